//! Scenario 5: memory.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 5,
    name: "memory",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::memory,
};

impl Bench {
    pub(super) fn memory(&self, report: &mut Report) -> Result<Section, String> {
        let url = format!("{}/obj.bin", self.nginx.base);
        let big = self.size / 16;
        let contenders = vec![
            self.resume_get_http(
                &format!("resume-get 16 jobs × {}", bytes(big)),
                &url,
                &["--jobs", "16", "--part-size", &size_arg(big)],
                &self.data,
            ),
            self.resume_get_http(
                &format!("resume-get 1 job × {}", bytes(self.size)),
                &url,
                &["--jobs", "1", "--part-size", &size_arg(self.size)],
                &self.data,
            ),
            self.curl_o(&url, &self.data),
            self.aria2c(&url, &self.data, &["--allow-overwrite=true"]),
        ];
        let rows = self.measure(5, &contenders)?;
        let mut table = String::from(
            "| contender | peak RSS MiB (median) | max of runs | ÷ curl -o | ÷ aria2c | median s \
             |\n|---|---:|---:|---:|---:|---:|\n",
        );
        for r in &rows {
            let _ = writeln!(
                table,
                "| {} | {:.1} | {:.1} | {:.2}× | {:.2}× | {:.3} |",
                r.contender.label,
                r.rss_mib(),
                r.rss_max_mib(),
                r.rss_mib() / rows[2].rss_mib(),
                r.rss_mib() / rows[3].rss_mib(),
                r.wall()
            );
        }
        for r in &rows[..2] {
            report.target(
                5,
                &format!("peak RSS, {}", r.contender.label),
                "≤ 48 MiB",
                format!(
                    "{:.1} MiB ({:.2}× curl, {:.2}× aria2c)",
                    r.rss_mib(),
                    r.rss_mib() / rows[2].rss_mib(),
                    r.rss_mib() / rows[3].rss_mib()
                ),
                r.rss_max_mib() <= 48.0,
            );
        }
        Ok(Section {
            id: 5,
            title: "Memory".into(),
            setup: format!(
                "Peak RSS (`/usr/bin/time` %M) downloading {} from nginx.",
                bytes(self.size)
            ),
            table,
            commands: commands(&rows),
            notes: vec!["The target is checked against the largest peak of all runs.".into()],
            conditions: String::new(),
        })
    }
}
