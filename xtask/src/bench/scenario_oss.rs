//! Scenario 3: the OSS protocol vs the Python SDKs over the oss-emulator.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 3,
    name: "OSS protocol vs the Python SDKs (oss-emulator)",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::oss_protocol,
};

impl Bench {
    pub(super) fn oss_protocol(&self, report: &mut Report) -> Result<Section, String> {
        let ep = self.oss.endpoint.clone();
        let part = 8 * MIB;
        let rg_dest = self.out_file("resume-get.bin");
        let py = |label: &str, tool: &str| {
            let dest = self.out_file(&format!("{tool}.bin"));
            Contender::new(
                label,
                args([
                    self.python.display().to_string(),
                    self.peer_script.display().to_string(),
                    tool.to_string(),
                    ep.clone(),
                    OSS_REGION.to_string(),
                    OSS_BUCKET.to_string(),
                    "obj.bin".to_string(),
                    dest.display().to_string(),
                    self.out.display().to_string(),
                    part.to_string(),
                    "8".to_string(),
                ]),
                Some(dest),
                Expect::SameAs(self.data.clone()),
            )
            .env("OSS_ACCESS_KEY_ID", OSS_AK)
            .env("OSS_ACCESS_KEY_SECRET", OSS_SK)
        };
        let contenders = vec![
            Contender::new(
                "resume-get (oss://, V4)",
                args([
                    self.rg(),
                    "-q".into(),
                    format!("oss://{OSS_BUCKET}/obj.bin"),
                    rg_dest.display().to_string(),
                    "--endpoint".into(),
                    ep.clone(),
                    "--region".into(),
                    OSS_REGION.into(),
                    "--jobs".into(),
                    "8".into(),
                    "--part-size".into(),
                    size_arg(part),
                ]),
                Some(rg_dest),
                Expect::SameAs(self.data.clone()),
            )
            .env("OSS_ACCESS_KEY_ID", OSS_AK)
            .env("OSS_ACCESS_KEY_SECRET", OSS_SK),
            py("oss2.resumable_download", "oss2"),
            py("alibabacloud-oss-v2 downloader", "oss-v2"),
        ];
        let rows = self.measure(3, &contenders)?;
        let r = rows[0].wall() / rows[1].wall();
        report.target(
            3,
            "resume-get ÷ oss2.resumable_download (wall)",
            "≤ 0.15×",
            format!(
                "{r:.2}× ({:.2}× the v2 downloader)",
                rows[0].wall() / rows[2].wall()
            ),
            r <= 0.15,
        );
        Ok(Section {
            id: 3,
            title: "OSS protocol".into(),
            setup: format!(
                "A {} object from `oss-emulator` (V4 signatures checked, region {OSS_REGION}, \
                 served from a directory), 8 jobs/threads, {} parts for everyone.",
                bytes(self.size),
                bytes(part)
            ),
            table: table(&rows, self.size, &[1, 2]),
            commands: commands(&rows),
            notes: vec![
                "The Python rows include the interpreter's start-up and imports (what a user \
                 running a script pays)."
                    .into(),
            ],
            conditions: String::new(),
        })
    }
}
