//! Scraping: a [`ScrapeManager`] runs a [`pool::ScrapePool`] per job, which runs a
//! [`scrape_loop::ScrapeLoop`] per target. Each scrape is fetched ([`scraper`]), parsed and
//! resolved through the per-target series cache ([`cache`], [`append`]), run through the job's
//! filter plugins (`filter`) and queued for remote write.

pub mod append;
pub mod cache;
mod filter;
pub mod manager;
pub mod metrics;
pub mod pool;
pub mod scrape_loop;
pub mod scraper;
pub mod target;

#[cfg(test)]
mod tests;

pub use manager::{ScrapeManager, SharedTargets};
pub use metrics::ScrapeFamilies;
pub use scrape_loop::Stop;
