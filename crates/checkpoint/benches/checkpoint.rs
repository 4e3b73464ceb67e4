//! Micro-benchmarks of checkpoint I/O at 100 000 parts (issue 8): snapshot encode and decode,
//! recording every part (record + flush, as the engine does after each part) into the file
//! store's journal, and loading snapshot + journal back. `cargo bench -p checkpoint`.

use std::hint::black_box;
use std::time::Duration;

use checkpoint::codec;
use checkpoint::{
    Checkpoint, CheckpointId, CheckpointStore, FileCheckpointStore, MemoryCheckpointStore,
    ObjectFingerprint, PartDigest, PartLayout, RangeSpec,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PARTS: u64 = 100_000;
const PART_SIZE: u64 = 64 << 10;

fn digest(i: u64) -> PartDigest {
    let mut blake3 = [0u8; 32];
    for (k, b) in blake3.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(k as u64) >> (k % 8)) as u8;
    }
    PartDigest {
        blake3,
        crc64: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    }
}

fn checkpoint(done: u64) -> Checkpoint {
    let id = CheckpointId {
        source: "oss://bench@oss-cn-hangzhou.aliyuncs.com".into(),
        key: "datasets/2026/big.tar".into(),
        version_id: None,
        range: RangeSpec::Full,
        destination: "/data/big.tar".into(),
    };
    let object = ObjectFingerprint {
        size: PARTS * PART_SIZE,
        etag: Some("\"5EB63BBBE01EEED093CB22BB8F5ACDC3\"".into()),
        last_modified: None,
        version_id: None,
        checksums: vec![checkpoint::StoredChecksum {
            kind: checkpoint::CRC64_XZ_FULL_OBJECT.into(),
            value: 42u64.to_be_bytes().to_vec(),
        }],
    };
    let layout = PartLayout::new(0, PARTS * PART_SIZE, PART_SIZE).unwrap();
    let mut cp = Checkpoint::new(id, object, layout);
    cp.done = (0..done).map(|i| (i, digest(i))).collect();
    cp
}

fn group(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("checkpoint");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(PARTS));
    g
}

fn snapshot(c: &mut Criterion) {
    let full = checkpoint(PARTS);
    let bytes = codec::encode(&full);
    let mut g = group(c);
    g.bench_function("encode/100k parts", |b| {
        b.iter(|| codec::encode(black_box(&full)))
    });
    g.bench_function("decode/100k parts", |b| {
        b.iter(|| codec::decode(black_box(&bytes), "bench").unwrap())
    });
    g.finish();
}

/// What a download of 100 000 parts costs the store: one snapshot, then record + flush per part.
fn record(c: &mut Criterion) {
    let fresh = checkpoint(0);
    let mut g = group(c);
    g.bench_function("file store: save + 100k × (record + flush)", |b| {
        let dir = tempfile::tempdir().unwrap();
        b.iter(|| {
            let store = FileCheckpointStore::in_dir(dir.path());
            store.save(&fresh).unwrap();
            for i in 0..PARTS {
                store.record(&fresh.id, i, digest(i)).unwrap();
                store.flush(&fresh.id).unwrap();
            }
            store.bytes_written()
        })
    });
    g.bench_function("memory store: save + 100k × (record + flush)", |b| {
        b.iter(|| {
            let store = MemoryCheckpointStore::new();
            store.save(&fresh).unwrap();
            for i in 0..PARTS {
                store.record(&fresh.id, i, digest(i)).unwrap();
                store.flush(&fresh.id).unwrap();
            }
            store.bytes_written()
        })
    });
    g.finish();
}

/// Resuming: load a snapshot followed by 100 000 journal records.
fn load(c: &mut Criterion) {
    let fresh = checkpoint(0);
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpointStore::in_dir(dir.path());
    store.save(&fresh).unwrap();
    for i in 0..PARTS {
        store.record(&fresh.id, i, digest(i)).unwrap();
    }
    store.flush(&fresh.id).unwrap();
    let mut g = group(c);
    g.bench_function("file store: load snapshot + 100k journal records", |b| {
        b.iter(|| {
            let loaded = FileCheckpointStore::in_dir(dir.path())
                .load(&fresh.id)
                .unwrap()
                .unwrap();
            assert_eq!(loaded.checkpoint.done.len(), PARTS as usize);
        })
    });
    g.finish();
}

criterion_group!(benches, snapshot, record, load);
criterion_main!(benches);
