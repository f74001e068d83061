//! The benchmark's table: each row's samples (one per round), printed as medians with the
//! spread over rounds, next to ratios against the row it is compared with, all from one run.

use super::load::Measured;

/// One round of one row; CPU and system calls per call.
#[derive(Clone, Copy)]
struct Sample {
    per_second: f64,
    p50: f64,
    p99: f64,
    server_us: Option<f64>,
    redis_us: Option<f64>,
    redis_reads: Option<f64>,
    redis_writes: Option<f64>,
    generator_us: f64,
    errors: u64,
    load_average: f64,
}

struct Row {
    name: String,
    versus: Option<String>,
    samples: Vec<Sample>,
}

#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Adds a sample of row `name`, compared with row `versus`.
    pub fn add(&mut self, name: &str, versus: Option<&str>, measured: &Measured) {
        let per_call = |count: u64| count as f64 / measured.calls.max(1) as f64;
        let sample = Sample {
            per_second: measured.per_second(),
            p50: measured.micros(0.5) as f64,
            p99: measured.micros(0.99) as f64,
            server_us: measured.server_cpu.map(|cpu| measured.per_call(cpu)),
            redis_us: measured.redis_cpu.map(|cpu| measured.per_call(cpu)),
            redis_reads: measured.redis_io.map(|(reads, _)| per_call(reads)),
            redis_writes: measured.redis_io.map(|(_, writes)| per_call(writes)),
            generator_us: measured.per_call(measured.generator_cpu),
            errors: measured.errors,
            load_average: measured.load_average,
        };
        let optional = |label: &str, value: Option<f64>| {
            value.map_or(String::new(), |value| {
                format!(", {label} {value:.1} µs/call")
            })
        };
        println!(
            "  {name}: {:.0}/s, p50 {} µs, p99 {} µs{}{}, generator {:.1} µs/call, {} errors, load average {:.1}",
            sample.per_second,
            sample.p50,
            sample.p99,
            optional("server", sample.server_us),
            optional("Redis", sample.redis_us),
            sample.generator_us,
            sample.errors,
            sample.load_average
        );
        match self.rows.iter_mut().find(|row| row.name == name) {
            Some(row) => row.samples.push(sample),
            None => self.rows.push(Row {
                name: name.to_string(),
                versus: versus.map(str::to_string),
                samples: vec![sample],
            }),
        }
    }

    /// The median, smallest and largest of one number over a row's rounds.
    fn spread(&self, name: &str, number: fn(&Sample) -> Option<f64>) -> Option<[f64; 3]> {
        let row = self.rows.iter().find(|row| row.name == name)?;
        let mut values: Vec<f64> = row.samples.iter().filter_map(number).collect();
        values.sort_by(f64::total_cmp);
        Some([
            *values.get(values.len() / 2)?,
            *values.first()?,
            *values.last()?,
        ])
    }

    fn median(&self, name: &str, number: fn(&Sample) -> Option<f64>) -> Option<f64> {
        self.spread(name, number).map(|[median, ..]| median)
    }

    /// The median generator CPU per call over the rows that have a server, and the same rows'
    /// median server CPU per call: what the generator costs next to what it measures.
    pub fn generator_share(&self) -> Option<(f64, f64)> {
        let mut generator = Vec::new();
        let mut server = Vec::new();
        for row in &self.rows {
            if let Some(cpu) = self.median(&row.name, |s| s.server_us) {
                server.push(cpu);
                generator.extend(self.median(&row.name, |s| Some(s.generator_us)));
            }
        }
        let middle = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).copied()
        };
        Some((middle(generator)?, middle(server)?))
    }

    pub fn print(&self) {
        println!(
            "\n| row | calls/s (min-max) | p50 µs | p99 µs | server CPU µs/call (min-max) | Redis CPU µs/call | Redis reads / writes per call | generator CPU µs/call | errors | load average (min-max) | compared with | calls/s | server CPU | Redis CPU | p99 |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            self.print_row(row);
        }
    }

    fn print_row(&self, row: &Row) {
        let name = &row.name;
        let show = |number: fn(&Sample) -> Option<f64>, digits: usize| {
            self.median(name, number)
                .map_or("-".into(), |value| format!("{value:.digits$}"))
        };
        let ranged = |number: fn(&Sample) -> Option<f64>, digits: usize| {
            self.spread(name, number)
                .map_or("-".into(), |[median, low, high]| {
                    format!("{median:.digits$} ({low:.digits$}-{high:.digits$})")
                })
        };
        let io = match (
            self.median(name, |s| s.redis_reads),
            self.median(name, |s| s.redis_writes),
        ) {
            (Some(reads), Some(writes)) => format!("{reads:.2} / {writes:.2}"),
            _ => "-".into(),
        };
        let errors: u64 = row.samples.iter().map(|s| s.errors).sum();
        let ratio = |number: fn(&Sample) -> Option<f64>| {
            let versus = row.versus.as_deref()?;
            Some(self.median(name, number)? / self.median(versus, number)?)
        };
        let times = |value: Option<f64>| value.map_or("-".into(), |value| format!("{value:.2}x"));
        println!(
            "| {name} | {} | {} | {} | {} | {} | {io} | {} | {errors} | {} | {} | {} | {} | {} | {} |",
            ranged(|s| Some(s.per_second), 0),
            show(|s| Some(s.p50), 0),
            show(|s| Some(s.p99), 0),
            ranged(|s| s.server_us, 1),
            show(|s| s.redis_us, 1),
            show(|s| Some(s.generator_us), 1),
            ranged(|s| Some(s.load_average), 1),
            row.versus.as_deref().unwrap_or("-"),
            times(ratio(|s| Some(s.per_second))),
            times(ratio(|s| s.server_us)),
            times(ratio(|s| s.redis_us)),
            times(ratio(|s| Some(s.p99))),
        );
    }
}
