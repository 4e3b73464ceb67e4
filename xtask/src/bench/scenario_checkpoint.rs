//! Scenario 4: checkpoint cost with many parts.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 4,
    name: "checkpoint cost with many parts",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::checkpoint_scaling,
};

impl Bench {
    pub(super) fn checkpoint_scaling(&self, report: &mut Report) -> Result<Section, String> {
        let url = format!("{}/obj.bin", self.nginx.base);
        let part = self.size / MANY_PARTS;
        let ps = size_arg(part);
        let contenders = vec![
            self.resume_get_http(
                "resume-get, checkpoint",
                &url,
                &["--part-size", &ps],
                &self.data,
            ),
            self.resume_get_http(
                "resume-get --no-checkpoint",
                &url,
                &["--part-size", &ps, "--no-checkpoint"],
                &self.data,
            ),
        ];
        let rows = self.measure(4, &contenders)?;
        let ratio = rows[0].wall() / rows[1].wall();
        let delta = match (rows[0].written(), rows[1].written()) {
            (Some(a), Some(b)) => format!("{:.0}", a - b),
            _ => "not measured".into(),
        };
        let cp_bytes = self.checkpoint_probe(&contenders[0])?;
        let mut table = table(&rows, self.size, &[1]);
        let _ = writeln!(
            table,
            "\nBytes written to the checkpoint over one download: {cp_bytes} = {:.1} per part \
             (the checkpoint file is one snapshot then an append-only journal, deleted after \
             the rename; this is its largest size, polled every millisecond during an extra, \
             untimed run). Cross-check: the two rows' median write(2)/pwrite(2) byte counts \
             differ by {delta} (± a few KiB of the runtime's 8-byte eventfd wake-ups).",
            cp_bytes as f64 / MANY_PARTS as f64
        );
        report.target(
            4,
            &format!("{MANY_PARTS} parts: checkpoint ÷ --no-checkpoint (wall)"),
            "≤ 1.10×",
            format!("{ratio:.2}×, {cp_bytes} bytes written to the checkpoint"),
            ratio <= 1.10,
        );
        Ok(Section {
            id: 4,
            title: "Checkpoint scaling".into(),
            setup: format!(
                "A {} object from nginx in {} parts ({MANY_PARTS} parts), 8 jobs, with the \
                 default checkpoint beside DEST vs `--no-checkpoint`.",
                bytes(self.size),
                bytes(part)
            ),
            table,
            commands: commands(&rows),
            notes: vec![],
            conditions: String::new(),
        })
    }

    /// Runs `c` (resume-get with its checkpoint beside DEST) once more, untimed, and returns
    /// the largest size its checkpoint file reached.
    pub(super) fn checkpoint_probe(&self, c: &Contender) -> Result<u64, String> {
        self.fresh_out()?;
        let out = c.output.as_ref().ok_or("no output")?;
        let mut cp = out.clone().into_os_string();
        cp.push(".rgcp");
        let cp = PathBuf::from(cp);
        let mut child = spawn_plain(&c.argv)?;
        let mut largest = 0u64;
        let deadline = Instant::now() + Duration::from_secs(600);
        let status = loop {
            if let Ok(m) = fs::metadata(&cp) {
                largest = largest.max(m.len());
            }
            if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the checkpoint probe run did not finish".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if !status.success() {
            return Err(format!("the checkpoint probe run failed ({status})"));
        }
        same_bytes(&self.data, out)?;
        Ok(largest)
    }
}
