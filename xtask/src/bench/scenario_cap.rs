//! Scenario 2: a per-connection cap.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 2,
    name: "per-connection cap (nginx limit_rate)",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::per_connection_cap,
};

impl Bench {
    pub(super) fn per_connection_cap(&self, report: &mut Report) -> Result<Section, String> {
        let name = self
            .cap_data
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let url = format!("{}/capped/{name}", self.nginx.base);
        let jobs = 16u64;
        let contenders = vec![
            self.resume_get_http(
                "resume-get --jobs 16",
                &url,
                &["--jobs", "16"],
                &self.cap_data,
            ),
            self.aria2c(&url, &self.cap_data, &["--allow-overwrite=true"]),
        ];
        let rows = self.measure(2, &contenders)?;
        let ideal = self.cap_size as f64 / (jobs * CAP_BYTES_PER_SEC) as f64;
        let mut table = String::from(
            "| contender | median s | min–max s | MiB/s | % of ideal (16 × 25 MiB/s) | ÷ aria2c | \
             cpu-s/GiB | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &rows {
            let _ = writeln!(
                table,
                "| {} | {:.3} | {:.3}–{:.3} | {:.0} | {:.0} % | {:.2}× | {:.2} | {:.1} |",
                r.contender.label,
                r.wall(),
                r.min(),
                r.max(),
                mib_s(self.cap_size, r.wall()),
                100.0 * ideal / r.wall(),
                r.wall() / rows[1].wall(),
                r.cpu() / (self.cap_size as f64 / GIB as f64),
                r.rss_mib()
            );
        }
        let pct = 100.0 * ideal / rows[0].wall();
        report.target(
            2,
            "resume-get --jobs 16: % of ideal (jobs × cap)",
            "≥ 95 %",
            format!(
                "{pct:.0} % ({:.0} % for aria2c)",
                100.0 * ideal / rows[1].wall()
            ),
            pct >= 95.0,
        );
        Ok(Section {
            id: 2,
            title: "Per-connection cap".into(),
            setup: format!(
                "A {} object from nginx with `limit_rate {CAP_NGINX}` (per request); ideal = \
                 size ÷ (16 × 25 MiB/s) = {ideal:.3} s.",
                bytes(self.cap_size)
            ),
            table,
            commands: commands(&rows),
            notes: {
                let mut n = vec![
                    "nginx paces a response only after its first sendfile chunk \
                     (`sendfile_max_chunk`, 2 MiB) has gone out, so a response of n MiB takes \
                     ≈ (n − 2) ÷ 25 s (curl here: 8 MiB in 0.25 s, 64 MiB in 2.52 s): more than \
                     100 % of jobs × cap is possible, and many smaller requests (resume-get's \
                     8 MiB parts) get more unpaced bytes than a few large ones (aria2c's 16 \
                     segments)."
                        .to_string(),
                ];
                if self.cap_size / (8 * MIB) < jobs {
                    n.push(format!(
                        "This {} object has only {} parts of 8 MiB, so resume-get opens {} \
                         connections, not 16: the % of ideal is not comparable with the full \
                         run.",
                        bytes(self.cap_size),
                        self.cap_size / (8 * MIB),
                        self.cap_size / (8 * MIB)
                    ));
                }
                n
            },
            conditions: String::new(),
        })
    }
}
