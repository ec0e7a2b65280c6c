//! Harness for the validating walk of OTLP/protobuf (`ingest::otlp::walk`),
//! differential: prost's decode is its oracle.

use crate::ingest::otlp::{decode, walk, Media, Signal};

/// The first byte picks the signal (modulo 3), the rest is the body (the
/// `otlp_protobuf` format, so that corpus seeds this one). The walk accepts
/// exactly what prost decodes, with the decoded export's item count.
pub fn otlp_walk(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(first) % Signal::ALL.len()];
    let walked = walk::items(signal, body);
    let decoded = decode(signal, Media::Protobuf, body).map(|export| export.items());
    match (&walked, &decoded) {
        (Ok(a), Ok(b)) if a == b => {}
        (Err(_), Err(_)) => {}
        _ => panic!("{signal:?}: the walk says {walked:?}, prost {decoded:?}"),
    }
}
