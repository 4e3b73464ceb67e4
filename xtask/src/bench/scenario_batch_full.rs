//! Scenario 12: batch jobs at issue 12's sizes — 10 000 × 64 KiB, and 1 000 × 1 MiB + 2 ×
//! 512 MiB — whatever `--quick` says (it only sets the rounds). Not in the default run: about
//! 4 GiB of disk and many minutes. The code is scenario 11's.

use super::scenario_batch::Sets;
use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 12,
    name: "batch jobs (-r) at the issue's sizes: 10 000 × 64 KiB; 1 000 × 1 MiB + 2 × 512 MiB",
    default: false,
    needs: &[],
    lab: false,
    conditions: None,
    run: batch_full,
};

fn batch_full(b: &Bench, report: &mut Report) -> Result<Section, String> {
    b.batch(
        report,
        &Sets {
            id: 12,
            small_n: 10_000,
            small_size: 64 * KIB,
            mixed_n: 1_000,
            mixed_size: MIB,
            large_n: 2,
            large_size: 512 * MIB,
            // A second 1.5 GiB copy of the mixed set does not fit a CI disk comfortably.
            emulator_mixed: false,
        },
    )
}
