//! The validating OTLP/protobuf walk (`ingest::otlp::walk`) alone, for
//! counting its instructions under callgrind: walks FILE (a metrics export,
//! e.g. `examples/otlp_payload`'s 1049-byte one) N times and prints the item
//! count. Two runs of N1 and N2 walks differ by exactly N2-N1 walks, so
//! (Ir(N2) - Ir(N1)) / (N2 - N1) is one walk with start-up cancelled:
//!
//!   walk_count FILE N
//!   valgrind --tool=callgrind target/walk/release/examples/walk_count metrics-1024.pb 2000

use std::hint::black_box;
use std::process::exit;

use telegate::ingest::otlp::{walk, Signal};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(file), Some(Ok(count))) = (args.first(), args.get(1).map(|n| n.parse::<u32>()))
    else {
        eprintln!("usage: walk_count FILE N");
        exit(2);
    };
    let bytes = std::fs::read(file).unwrap_or_else(|e| {
        eprintln!("walk_count: {file}: {e}");
        exit(2);
    });
    let mut items = 0u64;
    for _ in 0..count {
        match walk::items(Signal::Metrics, black_box(&bytes)) {
            Ok(n) => items += black_box(n),
            Err(e) => {
                eprintln!("walk_count: {file}: {}", e.0);
                exit(1);
            }
        }
    }
    println!("{count} walks, {items} items");
}
