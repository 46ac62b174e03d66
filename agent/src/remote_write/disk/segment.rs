//! Segment files of one shard directory: `<id, 20 decimal digits>.seg`, an 8-byte magic
//! header, then records back to back (see [`super::record`]). Segments are only appended to by
//! the [`SegmentWriter`] of the running queue; a new queue always starts a new segment, so a
//! torn tail left by a crash stays at the end of an older, immutable segment.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::position::Position;
use super::record::{self, Record, RecordError};

/// First bytes of every segment file: `TRWLQ`, two zero bytes, format version 1.
pub(super) const MAGIC: [u8; 8] = *b"TRWLQ\0\0\x01";
/// Offset of the first record in a segment.
pub(super) const SEGMENT_HEADER_LEN: u64 = MAGIC.len() as u64;
const SUFFIX: &str = ".seg";

/// Path of segment `id` in `dir`.
pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

/// Ids of the segment files in `dir`, ascending; other files are ignored.
///
/// # Errors
/// When the directory cannot be listed.
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        ids.extend(id);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Appends records to the newest segment.
#[derive(Debug)]
pub(super) struct SegmentWriter {
    file: File,
    id: u64,
    len: u64,
}

impl SegmentWriter {
    /// Creates segment `id` in `dir` with its header.
    ///
    /// # Errors
    /// When the file exists already or cannot be created or written.
    pub(super) fn create(dir: &Path, id: u64) -> io::Result<SegmentWriter> {
        // Append mode: after a failed write is cut back, the next one lands at the new end.
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(segment_path(dir, id))?;
        file.write_all(&MAGIC)?;
        Ok(SegmentWriter {
            file,
            id,
            len: SEGMENT_HEADER_LEN,
        })
    }

    /// The segment's id.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Bytes written so far, header included: the next record's offset.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one encoded record with a single `write(2)` (page cache, no fsync).
    ///
    /// # Errors
    /// When the write fails; the segment is then cut back to its previous length (best
    /// effort), so no partial record stays before later ones.
    pub(super) fn append(&mut self, record: &[u8]) -> io::Result<()> {
        match self.file.write_all(record) {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(error) => {
                // A failed cut leaves a torn record, which readers skip with the segment's rest.
                let _ = self.file.set_len(self.len);
                Err(error)
            }
        }
    }

    /// Flushes the segment's data to the device.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// What [`SegmentReader::read`] found at a position.
#[derive(Debug)]
pub(super) enum Read {
    /// A valid record, and the offset just after it.
    Record(Record, u64),
    /// The end of the readable bytes of this segment.
    End,
    /// The segment file does not exist (deleted, or a gap in the ids).
    Missing,
    /// Bytes that are not a valid record (or a bad segment header): the rest of the segment
    /// (this many bytes) is unreadable.
    Corrupt(CorruptKind, u64),
}

/// Why a segment's bytes were unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CorruptKind {
    /// The file does not start with [`MAGIC`].
    Header,
    /// A record failed to decode.
    Record(RecordError),
}

/// Reads records of one shard's segments, keeping the current segment file open.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    dir: PathBuf,
    /// The open segment: id, file, length when last looked at.
    open: Option<(u64, File, u64)>,
}

impl SegmentReader {
    /// A reader of the segments in `dir`.
    pub(super) fn new(dir: &Path) -> SegmentReader {
        SegmentReader {
            dir: dir.to_owned(),
            open: None,
        }
    }

    /// Reads the record at `at`, looking no further than byte `limit` of its segment (the
    /// writer's length for the segment being written; `None` for the file's length).
    ///
    /// # Errors
    /// I/O errors other than a missing file or a short read.
    pub(super) fn read(&mut self, at: Position, limit: Option<u64>) -> io::Result<Read> {
        if self.open.as_ref().is_none_or(|(id, _, _)| *id != at.segment) {
            self.open = None;
            let file = match File::open(segment_path(&self.dir, at.segment)) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Missing),
                Err(e) => return Err(e),
            };
            let len = file.metadata()?.len();
            let mut magic = [0u8; MAGIC.len()];
            if len < SEGMENT_HEADER_LEN || file.read_exact_at(&mut magic, 0).is_err() || magic != MAGIC {
                return Ok(Read::Corrupt(CorruptKind::Header, len));
            }
            self.open = Some((at.segment, file, len));
        }
        let Some((_, file, len)) = &mut self.open else {
            return Ok(Read::Missing);
        };
        // Opened while it was being written, the segment may have grown since.
        if limit.is_none_or(|limit| limit > *len) {
            *len = file.metadata()?.len();
        }
        let limit = limit.unwrap_or(*len).min(*len);
        if at.offset >= limit {
            return Ok(Read::End);
        }
        let corrupt = |e| Read::Corrupt(CorruptKind::Record(e), limit - at.offset);
        let mut header = [0u8; record::HEADER_LEN];
        if at.offset + header.len() as u64 > limit {
            return Ok(corrupt(RecordError::Truncated));
        }
        file.read_exact_at(&mut header, at.offset)?;
        let payload_len = match Record::payload_len(&header) {
            Ok(len) => len,
            Err(e) => return Ok(corrupt(e)),
        };
        let end = at.offset + (record::HEADER_LEN + payload_len) as u64;
        if end > limit {
            return Ok(corrupt(RecordError::Truncated));
        }
        let mut bytes = vec![0u8; record::HEADER_LEN + payload_len];
        file.read_exact_at(&mut bytes, at.offset)?;
        Ok(match Record::decode(Bytes::from(bytes)) {
            Ok(record) => Read::Record(record, end),
            Err(e) => corrupt(e),
        })
    }
}

/// Records and samples of segment `id` from byte `from` on, reading only record headers (to
/// count what a budget drop loses; CRCs are not checked). Stops at the first implausible
/// header; a missing file counts as empty.
///
/// # Errors
/// I/O errors other than a missing file.
pub(super) fn count_samples(dir: &Path, id: u64, from: u64) -> io::Result<(usize, usize)> {
    let file = match File::open(segment_path(dir, id)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let (mut records, mut samples) = (0, 0);
    let mut at = from.max(SEGMENT_HEADER_LEN);
    let mut head = [0u8; record::HEADER_LEN + 4];
    while at.saturating_add(head.len() as u64) <= len {
        file.read_exact_at(&mut head, at)?;
        let Some(payload_len) = head.first_chunk().and_then(|h| Record::payload_len(h).ok()) else {
            break;
        };
        records += 1;
        samples += Record::payload_samples(&head[record::HEADER_LEN..]);
        at = at.saturating_add((record::HEADER_LEN + payload_len) as u64);
    }
    Ok((records, samples))
}

/// What one disk read found.
#[derive(Debug, Default)]
pub(super) struct DiskRead {
    /// Records with their start positions.
    pub(super) records: Vec<(Position, Record)>,
    /// Where the next read starts.
    pub(super) next: Position,
    /// Unreadable ranges: start, why, bytes skipped.
    pub(super) corrupt: Vec<(Position, CorruptKind, u64)>,
    /// Bytes of the records read.
    pub(super) bytes: u64,
}

/// Reads records from `from` up to `limit` (the write position when the read began), at most
/// `max_samples` samples (at least one record). An unreadable record skips the rest of its
/// segment (or, in the segment being written, up to `limit`).
pub(super) fn read_range(
    reader: &mut SegmentReader,
    from: Position,
    limit: Position,
    max_samples: usize,
) -> io::Result<DiskRead> {
    let mut read = DiskRead {
        next: from,
        ..DiskRead::default()
    };
    let mut samples = 0;
    let next_segment = |at: Position| Position {
        segment: at.segment + 1,
        offset: SEGMENT_HEADER_LEN,
    };
    while read.next < limit && (read.records.is_empty() || samples < max_samples) {
        let at = read.next;
        let in_writer = at.segment == limit.segment;
        match reader.read(at, in_writer.then_some(limit.offset))? {
            Read::Record(record, end) => {
                if !read.records.is_empty() && samples + record.samples > max_samples {
                    break;
                }
                samples += record.samples;
                read.bytes += end - at.offset;
                read.records.push((at, record));
                read.next.offset = end;
            }
            Read::End | Read::Missing if !in_writer => read.next = next_segment(at),
            // The segment being written ends at `limit`; anything else is not ours to read.
            Read::End | Read::Missing => read.next = limit,
            Read::Corrupt(kind, skipped) => {
                read.corrupt.push((at, kind, skipped));
                read.next = if in_writer { limit } else { next_segment(at) };
            }
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(samples: usize, fill: u8) -> Vec<u8> {
        // A one-literal snappy block: varint length 3, literal tag of 3 bytes, the bytes.
        Record::encode(samples, i64::from(fill), &[3, 2 << 2, fill, fill, fill])
    }

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn written_records_read_back_in_order_and_the_end_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(dir.path(), 3).unwrap();
        assert!(SegmentWriter::create(dir.path(), 3).is_err(), "never reuses a segment");
        for i in 0..3 {
            writer.append(&record(i + 1, i as u8)).unwrap();
        }
        assert_eq!(list_segments(dir.path()).unwrap(), [3]);
        let mut reader = SegmentReader::new(dir.path());
        let mut offset = SEGMENT_HEADER_LEN;
        for i in 0..3 {
            match reader.read(at(3, offset), Some(writer.len())).unwrap() {
                Read::Record(r, end) => {
                    assert_eq!((r.samples, r.max_timestamp_ms), (i + 1, i as i64));
                    offset = end;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(offset, writer.len());
        assert!(matches!(reader.read(at(3, offset), None).unwrap(), Read::End));
        assert!(matches!(reader.read(at(4, 8), None).unwrap(), Read::Missing));
        assert_eq!(count_samples(dir.path(), 3, 0).unwrap(), (3, 6));
        assert_eq!(count_samples(dir.path(), 9, 0).unwrap(), (0, 0));
    }

    #[test]
    fn a_limit_hides_bytes_past_the_writers_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(dir.path(), 1).unwrap();
        writer.append(&record(1, 1)).unwrap();
        let mut reader = SegmentReader::new(dir.path());
        assert!(matches!(
            reader
                .read(at(1, SEGMENT_HEADER_LEN), Some(SEGMENT_HEADER_LEN))
                .unwrap(),
            Read::End
        ));
    }

    #[test]
    fn torn_tails_and_flipped_bytes_are_corrupt_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(dir.path(), 1).unwrap();
        writer.append(&record(1, 1)).unwrap();
        let second = SEGMENT_HEADER_LEN + record(1, 1).len() as u64;
        writer.append(&record(2, 2)).unwrap();
        let path = segment_path(dir.path(), 1);
        let good = std::fs::read(&path).unwrap();
        for cut in second + 1..good.len() as u64 {
            std::fs::write(&path, &good[..cut as usize]).unwrap();
            let mut reader = SegmentReader::new(dir.path());
            assert!(matches!(
                reader.read(at(1, SEGMENT_HEADER_LEN), None).unwrap(),
                Read::Record(_, end) if end == second
            ));
            assert!(
                matches!(reader.read(at(1, second), None).unwrap(), Read::Corrupt(_, skipped) if skipped == cut - second),
                "cut at {cut}"
            );
        }
        for i in second as usize..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let mut reader = SegmentReader::new(dir.path());
            assert!(
                matches!(reader.read(at(1, second), None).unwrap(), Read::Corrupt(..)),
                "flipped byte {i}"
            );
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        std::fs::write(&path, &bad).unwrap();
        let mut reader = SegmentReader::new(dir.path());
        assert!(matches!(
            reader.read(at(1, SEGMENT_HEADER_LEN), None).unwrap(),
            Read::Corrupt(CorruptKind::Header, _)
        ));
        std::fs::write(&path, b"TRW").unwrap();
        let mut reader = SegmentReader::new(dir.path());
        assert!(matches!(
            reader.read(at(1, SEGMENT_HEADER_LEN), None).unwrap(),
            Read::Corrupt(CorruptKind::Header, _)
        ));
    }

    #[test]
    fn only_well_named_files_are_segments() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000000000000000002.seg",
            "00000000000000000001.seg",
            "1.seg",
            "position",
            "x.seg.tmp",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(list_segments(dir.path()).unwrap(), [1, 2]);
    }
}
