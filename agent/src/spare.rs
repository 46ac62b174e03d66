//! Idle buffers kept for reuse: scrape bodies (per scrape pool) and remote-write chunks (per
//! thread). A scrape that allocates and frees megabytes makes glibc hand the pages back and
//! fault them in again on the next scrape (big10: ~4,800 page faults a second, a quarter of the
//! agent's CPU); reusing the buffers keeps them mapped, within a budget.
//!
//! The budget: the first idle buffer is always kept (a single huge one too, so the next scrape
//! of the same size allocates nothing); more only while there are fewer than `max_count` and
//! their capacities add up to at most `max_bytes`. Beyond it buffers are freed, so memory follows
//! the scrapes in flight and their size rather than the number of targets.

/// A buffer that can be emptied and keeps its allocation.
pub trait Buffer: Default {
    /// Bytes allocated.
    fn capacity(&self) -> usize;
    /// Forgets the content, keeping the allocation.
    fn clear(&mut self);
}

impl Buffer for Vec<u8> {
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
}

impl Buffer for trawl_model::remote::SeriesBuffer {
    fn capacity(&self) -> usize {
        trawl_model::remote::SeriesBuffer::capacity(self)
    }
    fn clear(&mut self) {
        trawl_model::remote::SeriesBuffer::clear(self);
    }
}

/// Idle buffers within a budget (see the module docs).
#[derive(Debug)]
pub struct Spares<T> {
    idle: Vec<T>,
    max_count: usize,
    max_bytes: usize,
}

impl<T: Buffer> Spares<T> {
    /// An empty set keeping at most `max_count` buffers of at most `max_bytes` in all (bytes),
    /// except that one buffer is always kept.
    pub const fn new(max_count: usize, max_bytes: usize) -> Self {
        Spares {
            idle: Vec::new(),
            max_count,
            max_bytes,
        }
    }

    /// An empty buffer: the last one put back, or a new one without allocation.
    pub fn take(&mut self) -> T {
        self.idle.pop().unwrap_or_default()
    }

    /// Keeps `buffer`, emptied, if the budget allows; frees it otherwise.
    pub fn put(&mut self, mut buffer: T) {
        let idle: usize = self.idle.iter().map(T::capacity).sum();
        if self.idle.is_empty() || (self.idle.len() < self.max_count && idle + buffer.capacity() <= self.max_bytes) {
            buffer.clear();
            self.idle.push(buffer);
        }
    }

    /// Idle buffers kept.
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    /// Whether no buffer is kept.
    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }

    /// Capacity of the idle buffers, in bytes.
    pub fn bytes(&self) -> usize {
        self.idle.iter().map(T::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(capacity: usize) -> Vec<u8> {
        let mut b = Vec::with_capacity(capacity);
        b.push(1);
        b
    }

    #[test]
    fn kept_by_count_and_bytes_but_always_one() {
        let mut spares = Spares::new(3, 100);
        spares.put(buffer(1000));
        assert_eq!(
            (spares.len(), spares.bytes()),
            (1, 1000),
            "the first is kept whatever its size"
        );
        spares.put(buffer(10));
        assert_eq!(spares.len(), 1, "over the byte budget");
        let huge = spares.take();
        assert!(
            huge.is_empty() && huge.capacity() >= 1000,
            "taken back empty, allocation kept"
        );
        for _ in 0..4 {
            spares.put(buffer(20));
        }
        assert_eq!((spares.len(), spares.bytes()), (3, 60), "at most three");
        spares.take();
        spares.take();
        spares.take();
        assert!(spares.is_empty());
        assert_eq!(spares.take().capacity(), 0, "a new buffer allocates nothing");
    }
}
