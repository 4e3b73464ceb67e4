//! Micro-benchmarks of the engine's per-byte and per-part work (issue 8): CRC-64/XZ and BLAKE3
//! throughput, both together in the chunk sizes a body arrives in, combining per-part CRCs,
//! and the planner. `cargo bench -p resume-core`; the end-to-end figures are in BENCHMARKS.md
//! (`cargo xtask bench`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use resume_core::{RangeSpec, crc64, crc64_combine, plan, resolve_range};

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn quick(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("resume-core");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g
}

/// One-shot digests of a 4 MiB buffer: the ceiling of each algorithm on one core.
fn digests(c: &mut Criterion) {
    let buf = data(4 << 20);
    let mut g = quick(c);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("crc64/4MiB", |b| b.iter(|| crc64(black_box(&buf))));
    g.bench_function("blake3/4MiB", |b| b.iter(|| blake3::hash(black_box(&buf))));
    g.finish();
}

/// Both digests updated chunk by chunk, as the engine's per-part hasher does while a body
/// streams in: hyper hands over chunks of a few KiB to a few hundred KiB.
fn streaming(c: &mut Criterion) {
    let buf = data(4 << 20);
    let mut g = quick(c);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    for chunk in [4usize << 10, 16 << 10, 64 << 10, 256 << 10] {
        g.bench_with_input(
            BenchmarkId::new("crc64+blake3 streaming/chunk", chunk),
            &chunk,
            |b, &chunk| {
                b.iter(|| {
                    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Xz);
                    let mut blake = blake3::Hasher::new();
                    for piece in buf.chunks(chunk) {
                        crc.update(piece);
                        blake.update(piece);
                    }
                    (crc.finalize(), *blake.finalize().as_bytes())
                })
            },
        );
    }
    g.finish();
}

/// The end-of-download CRC: combining every part's CRC-64 into the object's.
fn combine(c: &mut Criterion) {
    let mut g = quick(c);
    for parts in [16_384u64, 100_000] {
        let crcs: Vec<u64> = (0..parts).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
        g.throughput(Throughput::Elements(parts));
        g.bench_with_input(
            BenchmarkId::new("crc64_combine/parts", parts),
            &crcs,
            |b, crcs| {
                b.iter(|| {
                    crcs.iter()
                        .fold(0u64, |acc, &c| crc64_combine(acc, c, black_box(64 << 10)))
                })
            },
        );
    }
    g.finish();
}

/// The fix proposed for the cost measured above (`crc_fast::checksum_combine` rebuilds the
/// zeros operator for `len` bytes, ~2·log2(8·len) squarings of a 64×64 GF(2) matrix, on every
/// call): build the operator for one part length once, then combine each part with one
/// matrix-vector product. CRC-64/XZ has init = xorout = all ones, so the combination is
/// `op · crc_a ⊕ crc_b` (Mark Adler's crc combine, as in crc_fast).
struct PartCombiner {
    op: [u64; 64],
}

fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let (mut sum, mut i) = (0u64, 0usize);
    while vec != 0 {
        if vec & 1 == 1 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_mul(a: &[u64; 64], b: &[u64; 64]) -> [u64; 64] {
    std::array::from_fn(|n| gf2_times(a, b[n]))
}

impl PartCombiner {
    fn new(len: u64) -> Self {
        // One zero bit: the reflected CRC-64/XZ polynomial, then a shift.
        let mut bit = [0u64; 64];
        bit[0] = 0xC96C_5795_D787_0F42;
        for (n, col) in bit.iter_mut().enumerate().skip(1) {
            *col = 1 << (n - 1);
        }
        let mut base = bit;
        for _ in 0..3 {
            base = gf2_mul(&base, &base); // 2, 4, 8 zero bits: one zero byte
        }
        let mut op: [u64; 64] = std::array::from_fn(|n| 1u64 << n);
        let mut n = len;
        while n > 0 {
            if n & 1 == 1 {
                op = gf2_mul(&base, &op);
            }
            base = gf2_mul(&base, &base);
            n >>= 1;
        }
        Self { op }
    }

    fn combine(&self, crc_a: u64, crc_b: u64) -> u64 {
        gf2_times(&self.op, crc_a) ^ crc_b
    }
}

fn combine_precomputed(c: &mut Criterion) {
    let part = 64u64 << 10;
    // Same answer as the library on real data first.
    let a = data(3 * part as usize);
    let (p0, p1, p2) = (
        &a[..part as usize],
        &a[part as usize..2 * part as usize],
        &a[2 * part as usize..],
    );
    let comb = PartCombiner::new(part);
    let crc = comb.combine(comb.combine(crc64(p0), crc64(p1)), crc64(p2));
    assert_eq!(
        crc,
        crc64(&a),
        "the precomputed operator must agree with crc64"
    );
    let mut g = quick(c);
    for parts in [16_384u64, 100_000] {
        let crcs: Vec<u64> = (0..parts).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
        g.throughput(Throughput::Elements(parts));
        g.bench_with_input(
            BenchmarkId::new("crc64_combine, operator built once (proposed)/parts", parts),
            &crcs,
            |b, crcs| {
                b.iter(|| {
                    let comb = PartCombiner::new(black_box(part));
                    crcs.iter().fold(0u64, |acc, &c| comb.combine(acc, c))
                })
            },
        );
    }
    g.finish();
}

/// Resolving the range and cutting 1 GiB and 100 000 parts into part ranges.
fn planner(c: &mut Criterion) {
    let mut g = quick(c);
    for (size, part) in [(1u64 << 30, 64u64 << 10), (100_000 * (64 << 10), 64 << 10)] {
        let parts = size.div_ceil(part);
        g.throughput(Throughput::Elements(parts));
        g.bench_with_input(
            BenchmarkId::new("plan+part_ranges/parts", parts),
            &(size, part),
            |b, &(size, part)| {
                b.iter(|| {
                    let range = resolve_range(RangeSpec::Full, black_box(size)).unwrap();
                    let layout = plan(range, black_box(part)).unwrap();
                    (0..layout.part_count)
                        .map(|i| layout.part_range(i).end)
                        .fold(0u64, u64::wrapping_add)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(
    benches,
    digests,
    streaming,
    combine,
    combine_precomputed,
    planner
);
criterion_main!(benches);
