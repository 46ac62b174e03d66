//! Remote write 1.0 (<https://prometheus.io/docs/specs/remote_write_spec/>): the protobuf
//! messages of Prometheus `prompb` ([`proto`]) and the fast snappy codec used to send them
//! ([`codec`]).

pub mod codec;
pub mod proto;
pub mod view;

pub use codec::{
    CodecError, Compressor, MAX_DECODED_BYTES, SeriesBuffer, decode_write_request, decode_write_request_limited,
    encode_labels,
};
pub use proto::{Exemplar, Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest};
pub use view::{ViewError, WriteRequestView};

#[cfg(test)]
mod tests;
