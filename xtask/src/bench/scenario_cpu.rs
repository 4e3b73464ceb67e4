//! Scenario 7: CPU per GiB, from scenario 1's runs.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 7,
    name: "CPU per GiB (from scenario 1's runs)",
    default: true,
    lab: false,
    needs: &[1],
    conditions: Some("computed from scenario 1's runs (see its conditions)"),
    run: Bench::cpu,
};

impl Bench {
    pub(super) fn cpu(&self, report: &mut Report) -> Result<Section, String> {
        let rows = &report.raw_rows;
        if rows.len() < 3 {
            return Err("scenario 7 needs scenario 1's runs".into());
        }
        let gib = self.size as f64 / GIB as f64;
        let per = |r: &Row| r.cpu() / gib;
        let mut table = String::from(
            "| contender | cpu-s/GiB (user + sys) | user | sys | ÷ curl -o | ÷ aria2c |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for r in rows {
            let _ = writeln!(
                table,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2}× | {:.2}× |",
                r.contender.label,
                per(r),
                r.user() / gib,
                r.sys() / gib,
                per(r) / per(&rows[1]),
                per(r) / per(&rows[2])
            );
        }
        let v = per(&rows[0]);
        let (c, a) = (per(&rows[1]), per(&rows[2]));
        report.target(
            7,
            "resume-get cpu-s/GiB, CRC-64 + BLAKE3 on",
            "≤ 1.0",
            format!("{v:.2} ({:.2}× curl -o, {:.2}× aria2c)", v / c, v / a),
            v <= 1.0,
        );
        Ok(Section {
            id: 7,
            title: "CPU".into(),
            setup: "User + system CPU seconds per GiB, from scenario 1's runs (resume-get always \
                    computes CRC-64 and BLAKE3 of every byte)."
                .into(),
            table,
            commands: vec![],
            notes: vec![],
            conditions: String::new(),
        })
    }
}
