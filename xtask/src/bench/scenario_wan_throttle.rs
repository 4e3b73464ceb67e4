//! Scenario 9: a throttling server on the WAN link: the emulator answers 503 SlowDown to every
//! GET above 4 concurrent requests.

use test_support::netlab::LabConfig;

use super::wan::*;
use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 9,
    name: "WAN: a server that throttles above 4 concurrent requests (lab, root)",
    default: false,
    lab: true,
    needs: &[],
    conditions: None,
    run: Bench::wan_throttle,
};

/// Requests the throttling server serves at once.
const ALLOWED: u64 = 4;

impl Bench {
    pub(super) fn wan_throttle(&self, report: &mut Report) -> Result<Section, String> {
        let size = self.wan_size();
        let plan = format!(
            "{{\"seed\": 9, \"rules\": [{{\"match\": {{\"method\": \"GET\", \"above_concurrent\": \
             {ALLOWED}}}, \"fault\": {{\"kind\": \"error\", \"status\": 503, \"code\": \
             \"SlowDown\"}}}}]}}"
        );
        let site = self.wan_site(
            LabConfig::new()
                .rtt(Duration::from_millis(WAN_RTT_MS))
                .rate_bits(WAN_RATE_BITS)
                .seed(90),
            Some(&plan),
        )?;
        let (data, _) = self.wan_object()?;
        let url = format!("{}/{OSS_BUCKET}/{WAN_KEY}", site.endpoint);
        let mut aria = self.aria2c(
            &url,
            &data,
            &["--allow-overwrite=true", "--retry-wait=1", "--max-tries=0"],
        );
        aria.label = "aria2c -x16 -s16 --retry-wait=1".into();
        aria.argv = site.client(aria.argv);
        let contenders = vec![
            self.wan_resume_get(&site, "resume-get (defaults: --jobs auto)", &[]),
            self.wan_resume_get(&site, "resume-get --jobs 16", &["--jobs", "16"]),
            self.wan_resume_get(&site, "resume-get --jobs 4", &["--jobs", "4"]),
            aria,
        ];
        let rows = self.measure(9, &contenders)?;
        let chose = self.wan_choice(&site)?;
        let fixed = self.wan_choice_with(&site, &["--jobs", "16"])?;
        let pct = |r: &Row| link_percent(size, r.wall());
        let r = rows[1].wall() / rows[0].wall();
        report.target(
            9,
            "throttling server: resume-get defaults ÷ --jobs 16 (speed)",
            "≥ 1.0× (backing off costs nothing)",
            format!("{r:.2}×"),
            r >= 1.0,
        );
        let mut t = table(&rows, size, &[1, 3]);
        let _ = writeln!(
            t,
            "\n% of the link (median): {}\n",
            rows.iter()
                .map(|r| format!("{} {:.0} %", r.contender.label, pct(r)))
                .collect::<Vec<_>>()
                .join(" · ")
        );
        Ok(Section {
            id: 9,
            title: format!("WAN: a server that throttles above {ALLOWED} concurrent requests"),
            setup: format!(
                "The link of scenario 8 without loss ({}); the emulator answers 503 SlowDown \
                 to every GET that arrives while more than {ALLOWED} requests are in flight \
                 (fault plan `above_concurrent`). A {} object.",
                site.lab.config().describe(),
                bytes(size)
            ),
            table: t,
            commands: commands(&rows),
            notes: vec![
                format!("resume-get defaults: {chose}"),
                format!("resume-get --jobs 16: {fixed}"),
            ],
            conditions: String::new(),
        })
    }
}
