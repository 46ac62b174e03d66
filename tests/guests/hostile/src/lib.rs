//! Test-only Trawl plugin whose behaviour is chosen by its config, so the host's tests and the
//! end-to-end tests can exercise every failure the host must survive with one component.
//!
//! Config (JSON object, all keys optional except `mode`):
//! - `mode`: `keep` (keep all), `drop` (drop all), `modify` (see below), `inspect` (reports what
//!   it received, see below), `loop` (spins forever), `grow` (allocates until the memory limit),
//!   `trap` (panics), `invalid` (returns the invalid outcome named by `kind`), `log` (writes
//!   `lines` log lines, keeps all), `error` (returns `plugin-error::failed`), `bad-config` (init
//!   fails with `invalid-config`).
//! - `at`: misbehave (`loop`, `grow`, `trap`, `invalid`, `error`) only on this instance's `at`-th
//!   call (1-based), keeping all otherwise; `0` (default) = every call. With `at: 2` the call after
//!   a trap runs on a fresh instance and succeeds.
//! - `needs`: list of `values`, `timestamps`, `target-labels`.
//! - `kind` (mode `invalid`): `count` (n + 1 verdicts), `verdict` (a verdict byte 7), `series`
//!   (an edit of series n), `symbol` (a set-label naming an unknown symbol id), `remove-symbol`
//!   (a remove-label naming an unknown id), `unmodified` (an edit of a kept series), `label-name`
//!   (sets label `1bad`), `remove-name` (removes `__name__`), `empty-name` (sets `__name__` to
//!   ``), `set-value` (a set-value, invalid outside the filter stage).
//! - `lines` (mode `log`): log lines per call (default 100).
//! - `forget`: empty the symbol table after every call, as a guest that lost its state would;
//!   the next call then answers `symbol-gap`.
//!
//! `modify`: every series is `modified`: label `plugin="hostile"` (created strings) and
//! `copy=<its __name__>` (a symbol id) are set, label `drop_me` is removed, and in the filter
//! stage with values the value is doubled; series whose name ends in `_drop` are dropped.
//!
//! `inspect`: series 0 is `modified` with labels `values`, `timestamps`, `targets` (lengths of
//! those columns), `base` (the batch's symbol-base), `table` (the guest's table size after the
//! delta) and `stage`; every other series is kept.

wit_bindgen::generate!({ world: "trawl-plugin", path: "../../../wit" });

use std::cell::RefCell;

use exports::trawl::plugin::plugin::Guest;
use trawl::plugin::host::{Level, log};
use trawl::plugin::types::{
    Batch, Needs, Outcome, PluginError, PluginInfo, RemoveLabel, SetLabel, SetValue, Stage, Text,
};

/// What the plugin does on a call.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Keep,
    Drop,
    Modify,
    Inspect,
    Loop,
    Grow,
    Trap,
    Invalid,
    Log,
    Error,
}

struct State {
    mode: Mode,
    at: u32,
    kind: String,
    lines: u32,
    forget: bool,
    symbols: Vec<String>,
    calls: u32,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

struct Hostile;

impl Guest for Hostile {
    fn init(config_json: String) -> Result<PluginInfo, PluginError> {
        let (state, needs) = parse_config(&config_json).map_err(PluginError::InvalidConfig)?;
        STATE.with_borrow_mut(|s| *s = Some(state));
        Ok(PluginInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            needs,
        })
    }

    fn process(batch: Batch) -> Result<Outcome, PluginError> {
        STATE.with_borrow_mut(|s| match s.as_mut() {
            Some(state) => state.process(batch),
            None => Err(PluginError::Failed("process called before init".into())),
        })
    }

    fn reset_symbols() {
        STATE.with_borrow_mut(|s| {
            if let Some(state) = s.as_mut() {
                state.symbols.clear();
            }
        });
    }
}

export!(Hostile);

impl State {
    fn process(&mut self, batch: Batch) -> Result<Outcome, PluginError> {
        self.calls += 1;
        if batch.symbol_base as usize != self.symbols.len() {
            return Err(PluginError::SymbolGap(self.symbols.len() as u32));
        }
        self.symbols.extend(batch.new_symbols.iter().cloned());
        let n = batch.offsets.len().saturating_sub(1);
        let misbehave = self.at == 0 || self.calls == self.at;
        let outcome = match self.mode {
            Mode::Keep => Ok(keep(n)),
            Mode::Drop => Ok(Outcome {
                verdicts: vec![1; n],
                ..keep(0)
            }),
            Mode::Modify => Ok(self.modify(&batch, n)),
            Mode::Inspect => Ok(self.inspect(&batch, n)),
            Mode::Log => {
                for i in 0..self.lines {
                    log(Level::Info, &format!("hostile log line {i}"));
                }
                Ok(keep(n))
            }
            _ if !misbehave => Ok(keep(n)),
            Mode::Loop => loop {
                std::hint::black_box(n);
            },
            Mode::Grow => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[hoard.len() % (1 << 20)] = 1;
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            Mode::Trap => panic!("hostile plugin asked to trap"),
            Mode::Invalid => Ok(self.invalid(&batch, n)),
            Mode::Error => Err(PluginError::Failed("hostile plugin asked to fail".into())),
        };
        if self.forget {
            self.symbols.clear();
        }
        outcome
    }

    fn id_of(&self, s: &str) -> Option<u32> {
        self.symbols.iter().position(|x| x == s).map(|i| i as u32)
    }

    fn pairs<'a>(&self, batch: &'a Batch, i: usize) -> &'a [u32] {
        &batch.labels[batch.offsets[i] as usize..batch.offsets[i + 1] as usize]
    }

    fn modify(&self, batch: &Batch, n: usize) -> Outcome {
        let mut out = keep(0);
        let drop_me = self.id_of("drop_me");
        for i in 0..n {
            let pairs = self.pairs(batch, i);
            let name_value = pairs.chunks(2).find(|p| self.symbols[p[0] as usize] == "__name__");
            let metric = name_value.map_or("", |p| self.symbols[p[1] as usize].as_str());
            if metric.ends_with("_drop") {
                out.verdicts.push(1);
                continue;
            }
            out.verdicts.push(2);
            let series = i as u32;
            out.set_labels.push(SetLabel {
                series,
                name: Text::New("plugin".into()),
                value: Text::New("hostile".into()),
            });
            if let Some(p) = name_value {
                out.set_labels.push(SetLabel {
                    series,
                    name: Text::New("copy".into()),
                    value: Text::Symbol(p[1]),
                });
            }
            if let Some(name) = drop_me {
                out.remove_labels.push(RemoveLabel { series, name });
            }
            if batch.stage == Stage::Filter && batch.values.len() == n {
                out.set_values.push(SetValue {
                    series,
                    value: batch.values[i] * 2.0,
                });
            }
        }
        out
    }

    fn inspect(&self, batch: &Batch, n: usize) -> Outcome {
        let mut out = keep(n);
        if n == 0 {
            return out;
        }
        out.verdicts[0] = 2;
        let stage = match batch.stage {
            Stage::Relabel => "relabel",
            Stage::Filter => "filter",
            Stage::Write => "write",
        };
        let facts = [
            ("values", batch.values.len().to_string()),
            ("timestamps", batch.timestamps_ms.len().to_string()),
            ("targets", batch.target_labels.len().to_string()),
            ("base", batch.symbol_base.to_string()),
            ("table", self.symbols.len().to_string()),
            ("stage", stage.to_string()),
        ];
        for (name, value) in facts {
            out.set_labels.push(SetLabel {
                series: 0,
                name: Text::New(name.into()),
                value: Text::New(value),
            });
        }
        out
    }

    fn invalid(&self, batch: &Batch, n: usize) -> Outcome {
        let mut out = Outcome {
            verdicts: vec![2; n],
            ..keep(0)
        };
        let set = |name: Text, value: Text| SetLabel { series: 0, name, value };
        let new = |s: &str| Text::New(s.into());
        let table = self.symbols.len() as u32;
        match self.kind.as_str() {
            "count" => out.verdicts.push(0),
            "verdict" => out.verdicts.iter_mut().for_each(|v| *v = 7),
            "series" => out.set_labels.push(SetLabel {
                series: n as u32,
                ..set(new("a"), new("b"))
            }),
            "symbol" => out.set_labels.push(set(new("a"), Text::Symbol(table + 5))),
            "remove-symbol" => out.remove_labels.push(RemoveLabel {
                series: 0,
                name: table + 5,
            }),
            "unmodified" => {
                out.verdicts.iter_mut().for_each(|v| *v = 0);
                out.set_labels.push(set(new("a"), new("b")));
            }
            "label-name" => out.set_labels.push(set(new("1bad"), new("b"))),
            "remove-name" => {
                let name = self.id_of("__name__").unwrap_or(table + 5);
                out.remove_labels.push(RemoveLabel { series: 0, name });
            }
            "empty-name" => out.set_labels.push(set(new("__name__"), new(""))),
            "set-value" => out.set_values.push(SetValue { series: 0, value: 1.0 }),
            _ => out.verdicts.push(0),
        }
        let _ = batch;
        out
    }
}

fn keep(n: usize) -> Outcome {
    Outcome {
        verdicts: vec![0; n],
        set_labels: Vec::new(),
        remove_labels: Vec::new(),
        set_values: Vec::new(),
    }
}

/// Reads the few keys above from a flat JSON object; good enough for test configs.
fn parse_config(json: &str) -> Result<(State, Needs), String> {
    let json = json.trim();
    if !json.starts_with('{') || !json.ends_with('}') {
        return Err("config is not a JSON object".into());
    }
    let mode = match field(json, "mode").as_deref().map(unquote) {
        Some("keep") => Mode::Keep,
        Some("drop") => Mode::Drop,
        Some("modify") => Mode::Modify,
        Some("inspect") => Mode::Inspect,
        Some("loop") => Mode::Loop,
        Some("grow") => Mode::Grow,
        Some("trap") => Mode::Trap,
        Some("invalid") => Mode::Invalid,
        Some("log") => Mode::Log,
        Some("error") => Mode::Error,
        Some("bad-config") => return Err("mode: bad-config asked for an invalid config".into()),
        Some(other) => return Err(format!("mode: unknown mode {other:?}")),
        None => return Err("mode: missing".into()),
    };
    let number = |key: &str, default: u32| -> Result<u32, String> {
        field(json, key).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{key}: not a number")))
    };
    let mut needs = Needs::empty();
    if let Some(list) = field(json, "needs") {
        for item in list.trim_matches(['[', ']']).split(',').map(|s| unquote(s.trim())) {
            needs |= match item {
                "values" => Needs::VALUES,
                "timestamps" => Needs::TIMESTAMPS,
                "target-labels" => Needs::TARGET_LABELS,
                "" => Needs::empty(),
                other => return Err(format!("needs: unknown column {other:?}")),
            };
        }
    }
    let state = State {
        mode,
        at: number("at", 0)?,
        kind: field(json, "kind").map(|k| unquote(&k).to_string()).unwrap_or_default(),
        lines: number("lines", 100)?,
        forget: field(json, "forget").as_deref() == Some("true"),
        symbols: Vec::new(),
        calls: 0,
    };
    Ok((state, needs))
}

/// The raw text of `key`'s value: a string with its quotes, a list with its brackets, or a scalar.
fn field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if let Some(body) = rest.strip_prefix('"') {
        body.find('"')? + 2
    } else if rest.starts_with('[') {
        rest.find(']')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim().to_string())
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"')
}
