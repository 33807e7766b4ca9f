//! The passes a run can name, one entry each: its name, what it does, the options a
//! `[[pass]]` entry of optimize.toml may give it, what it requires of the run, what it
//! ensures, whether the default pipeline runs it, and how it is built from the run's
//! settings. The pipeline, the config file's pass list, `--dump-ir-after` and
//! `optimize passes` all read this table: adding a pass means its folder plus one entry.

use crate::cleanup::Cleanup;
use crate::fold_batchnorm::FoldBatchNorm;
use crate::opset::UpgradeOpset;
use crate::pass_manager::{Pass, PassManager};
use crate::precision::options::{apply_options, OPTION_KEYS};
use crate::precision::pass::{PrecisionConfig, PrecisionPass};
use crate::schedule::{ScheduleConfig, SchedulePass};
use crate::simplify::Simplify;
use crate::tiling::TiledSchedulePass;
use optimize_ir::error::{Error, Result};

/// The settings of a run that passes are built from: the flags and `optimize.toml` merged.
#[derive(Clone, Debug, Default)]
pub struct PassSettings {
    /// Mixed precision's settings; `None` turns it off (`--no-precision`).
    pub precision: Option<PrecisionConfig>,
    /// Scheduling's settings; `None` when neither a scratchpad nor a target is given.
    pub schedule: Option<ScheduleConfig>,
}

/// What a pass needs from the run; checked when the pass list is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// It fixes the final operator order, so nothing may run after it.
    RunsLast,
    /// It cannot run without its settings; the text says which flags or keys give them.
    Settings(&'static str),
    /// It takes no options in a `[[pass]]` entry; the text, if any, says where they go.
    NoOptions(Option<&'static str>),
    /// It runs without the data, but does less and warns; the text says what and how.
    DataOrWarns(&'static str),
    /// It runs after this pass; a pass list that does not name it gets it inserted before.
    After(&'static str),
}

/// When a run without a pass list runs the pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inclusion {
    /// Always, in the default pipeline.
    Always,
    /// In the default pipeline unless turned off; the text says how.
    UnlessTurnedOff(&'static str),
    /// When its settings are present, also after a pass list that does not name it.
    AppendedWhenConfigured,
    /// When a pass that runs requires it ([`Requirement::After`]).
    WhenRequired,
    /// Only when a pass list names it.
    WhenListed,
}

/// Builds a pass from the run's settings and, when a pass list names it, its options.
type BuildFn = fn(&PassSettings, Option<&toml::Table>) -> Result<Box<dyn Pass>>;

/// One pass of the registry.
pub struct PassInfo {
    pub name: &'static str,
    /// One line for `optimize passes`.
    pub about: &'static str,
    /// Keys a `[[pass]]` entry may give (none: options come from flags or top-level keys).
    pub options: &'static [&'static str],
    pub requires: &'static [Requirement],
    /// What holds after it ran, in words (the pass manager checks the IR after every pass).
    pub ensures: &'static [&'static str],
    pub inclusion: Inclusion,
    /// Whether the run's settings turn it on (for the default pipeline).
    configured: fn(&PassSettings) -> bool,
    /// Builds the pass from the run's settings and, when a pass list names it, its
    /// `[[pass]]` options.
    build: BuildFn,
}

/// Every pass, in the order the default pipeline runs them.
pub static REGISTRY: &[PassInfo] = &[
    PassInfo {
        name: "cleanup",
        about: "removes Identity nodes, dead operators and unread initializers; folds Shape/Size of constants",
        options: &[],
        requires: &[Requirement::NoOptions(None)],
        ensures: &["no Identity node, no operator or initializer nobody reads", "every output bit-identical"],
        inclusion: Inclusion::Always,
        configured: |_| true,
        build: |_, _| Ok(Box::new(Cleanup)),
    },
    PassInfo {
        name: crate::fold_batchnorm::PASS_NAME,
        about: "folds inference-mode BatchNormalization into the Conv before it",
        options: &[],
        requires: &[Requirement::NoOptions(None)],
        ensures: &[
            "no BatchNormalization right after a Conv with constant weights",
            "outputs equal up to float rounding",
        ],
        inclusion: Inclusion::WhenRequired,
        configured: |_| true,
        build: |_, _| Ok(Box::new(FoldBatchNorm)),
    },
    PassInfo {
        name: crate::simplify::PASS_NAME,
        about: "folds Conv→Mul→Add affines into the Conv, fuses written-out HardSwish, folds affines into 1x1 Convs",
        options: &[],
        requires: &[Requirement::NoOptions(None)],
        ensures: &["outputs equal up to float rounding"],
        inclusion: Inclusion::WhenRequired,
        configured: |_| true,
        build: |_, _| Ok(Box::new(Simplify)),
    },
    PassInfo {
        name: crate::opset::PASS_NAME,
        about: "raises the default-domain opset (13 unless the version option says otherwise), rewriting the ops that changed",
        options: crate::opset::OPTION_KEYS,
        requires: &[],
        ensures: &["the same results at the new opset; an op it cannot upgrade is refused by name"],
        inclusion: Inclusion::WhenListed,
        configured: |_| true,
        build: |_, listed| {
            let empty = toml::Table::new();
            Ok(Box::new(UpgradeOpset::from_options(listed.unwrap_or(&empty))?))
        },
    },
    PassInfo {
        name: crate::precision::pass::PASS_NAME,
        about: "mixed precision: fp32/fp16/int8/int4 per operator by an ILP, steered by relevance and measured error",
        options: OPTION_KEYS,
        requires: &[
            Requirement::After(crate::fold_batchnorm::PASS_NAME),
            Requirement::After(crate::simplify::PASS_NAME),
            Requirement::DataOrWarns(
                "calibration data (--calib DIR, or the calib option) for int8 activations; without it only weight-only formats are offered, with a warning",
            ),
        ],
        ensures: &[
            "weight bytes within the size budget or, without one, the smallest size the fidelity search finds",
            "an allocation the independent checker accepted",
        ],
        inclusion: Inclusion::UnlessTurnedOff("--no-precision, or precision = false in optimize.toml"),
        configured: |s| s.precision.is_some(),
        build: build_precision,
    },
    PassInfo {
        name: crate::schedule::PASS_NAME,
        about: "operator order and scratchpad allocation (COSMA ILP), tiled below M_R",
        options: &[],
        requires: &[
            Requirement::RunsLast,
            Requirement::NoOptions(Some("its settings are flags or top-level keys of optimize.toml")),
            Requirement::Settings("a scratchpad size or a target: set scratchpad or target in optimize.toml, or pass --scratchpad SIZE or --target FILE"),
        ],
        ensures: &["a plan the independent checker accepts, within the scratchpad"],
        inclusion: Inclusion::AppendedWhenConfigured,
        configured: |s| s.schedule.is_some(),
        build: build_schedule,
    },
];

/// The names of every pass, in registry order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|p| p.name).collect()
}

/// The registry's entry for `name`.
pub fn find(name: &str) -> Option<&'static PassInfo> {
    REGISTRY.iter().find(|p| p.name == name)
}

/// The error for a name no pass has.
pub fn unknown(name: &str) -> Error {
    Error::Usage(format!(
        "unknown pass '{name}' (known: {})",
        names().join(", ")
    ))
}

/// Named in a pass list, the pass is asked for: its errors are the run's (not a skip), and
/// its `[[pass]]` options override the flags.
fn build_precision(s: &PassSettings, listed: Option<&toml::Table>) -> Result<Box<dyn Pass>> {
    let mut config = s.precision.clone().unwrap_or_default();
    if let Some(options) = listed {
        config.explicit = true;
        apply_options(&mut config, options)?;
    }
    Ok(Box::new(PrecisionPass { config }))
}

fn build_schedule(s: &PassSettings, _: Option<&toml::Table>) -> Result<Box<dyn Pass>> {
    let cfg = s
        .schedule
        .as_ref()
        .ok_or_else(|| Error::Internal("schedule built without its settings".into()))?;
    Ok(Box::new(schedule_pass(cfg)))
}

/// The scheduling pass for a configuration (it tiles where whole tensors do not fit).
pub fn schedule_pass(cfg: &ScheduleConfig) -> TiledSchedulePass {
    TiledSchedulePass {
        inner: SchedulePass {
            target: cfg.target.clone(),
            options: cfg.options.clone(),
        },
        plan_events: cfg.plan.is_some(),
    }
}

impl PassInfo {
    /// The passes it must run after.
    fn after(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.requires.iter().filter_map(|r| match r {
            Requirement::After(dep) => Some(*dep),
            _ => None,
        })
    }

    /// Checks what the pass requires of its options and of the settings, then builds it.
    /// `listed` holds its `[[pass]]` options when a pass list names it.
    fn build_checked(
        &self,
        settings: &PassSettings,
        listed: Option<&toml::Table>,
    ) -> Result<Box<dyn Pass>> {
        for r in self.requires {
            match *r {
                Requirement::NoOptions(instead) => {
                    if let Some(k) = listed.and_then(|o| o.keys().next()) {
                        let hint = instead.map(|w| format!(" here ({w})")).unwrap_or_default();
                        return Err(Error::Usage(format!(
                            "pass '{}' takes no option '{k}'{hint}",
                            self.name
                        )));
                    }
                }
                Requirement::Settings(what) if !(self.configured)(settings) => {
                    return Err(Error::Usage(format!("pass '{}' needs {what}", self.name)));
                }
                _ => {}
            }
        }
        (self.build)(settings, listed)
    }
}

/// Builds the passes of `entries` in order, each preceded by the passes it must run after
/// that are not already before it (those are built with their defaults), and checks that
/// a pass that runs last is last.
fn assemble(
    entries: &[(&'static PassInfo, Option<&toml::Table>)],
    settings: &PassSettings,
) -> Result<PassManager> {
    let mut pm = PassManager::new();
    let mut placed: Vec<&'static str> = Vec::new();
    for (i, (info, listed)) in entries.iter().enumerate() {
        for dep in info.after() {
            if placed.contains(&dep) {
                continue;
            }
            if entries[i + 1..].iter().any(|(later, _)| later.name == dep) {
                return Err(Error::Usage(format!(
                    "pass '{}' must run after '{dep}': list '{dep}' before it",
                    info.name
                )));
            }
            let dep_info = find(dep).ok_or_else(|| unknown(dep))?;
            pm.add_boxed(dep_info.build_checked(settings, None)?);
            placed.push(dep);
        }
        let last = i + 1 == entries.len();
        if info.requires.contains(&Requirement::RunsLast) && !last {
            return Err(Error::Usage(format!(
                "pass '{}' must be the last pass: it fixes the final operator order",
                info.name
            )));
        }
        pm.add_boxed(info.build_checked(settings, *listed)?);
        placed.push(info.name);
    }
    Ok(pm)
}

/// The pass manager for a pass list (from a config file: each name with its options), in
/// that order, with the passes each requires before it inserted where the list does not
/// name them; passes the settings turn on that the list does not name are appended where
/// the registry says so (scheduling, which must come last).
pub fn from_list(list: &[(&str, &toml::Table)], settings: &PassSettings) -> Result<PassManager> {
    let mut entries = Vec::new();
    for (name, options) in list {
        entries.push((find(name).ok_or_else(|| unknown(name))?, Some(*options)));
    }
    append_configured(&mut entries, settings);
    assemble(&entries, settings)
}

/// The passes of a run without a pass list, in registry order: those always run, those the
/// settings turn on, and those these require.
pub fn default_list(settings: &PassSettings) -> Result<PassManager> {
    let mut entries = Vec::new();
    for info in REGISTRY {
        let on = match info.inclusion {
            Inclusion::Always => true,
            Inclusion::UnlessTurnedOff(_) => (info.configured)(settings),
            Inclusion::WhenRequired | Inclusion::WhenListed => false,
            Inclusion::AppendedWhenConfigured => false,
        };
        if on {
            entries.push((info, None));
        }
    }
    append_configured(&mut entries, settings);
    assemble(&entries, settings)
}

fn append_configured(
    entries: &mut Vec<(&'static PassInfo, Option<&toml::Table>)>,
    settings: &PassSettings,
) {
    for info in REGISTRY {
        if info.inclusion == Inclusion::AppendedWhenConfigured
            && (info.configured)(settings)
            && !entries.iter().any(|(e, _)| e.name == info.name)
        {
            entries.push((info, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> ScheduleConfig {
        ScheduleConfig::from_flags(Some("1MiB"), None, None, Some(60.0), false, None)
            .expect("config")
            .expect("a scratchpad")
    }

    fn list(names: &[&str], settings: &PassSettings) -> Result<Vec<&'static str>> {
        let empty = toml::Table::new();
        let l: Vec<(&str, &toml::Table)> = names.iter().map(|n| (*n, &empty)).collect();
        from_list(&l, settings).map(|pm| pm.names())
    }

    fn usage(r: Result<Vec<&'static str>>) -> String {
        match r {
            Err(Error::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn default_list_follows_the_settings() {
        let mut s = PassSettings {
            precision: Some(PrecisionConfig::default()),
            schedule: None,
        };
        let with_precision = ["cleanup", "fold-batchnorm", "simplify", "precision"];
        assert_eq!(default_list(&s).unwrap().names(), with_precision);
        s.schedule = Some(schedule());
        assert_eq!(
            default_list(&s).unwrap().names(),
            [
                "cleanup",
                "fold-batchnorm",
                "simplify",
                "precision",
                "schedule"
            ]
        );
        s.precision = None;
        assert_eq!(default_list(&s).unwrap().names(), ["cleanup", "schedule"]);
    }

    #[test]
    fn a_list_runs_in_its_order_and_scheduling_is_appended_when_configured() {
        let mut s = PassSettings::default();
        assert_eq!(
            list(&["precision", "cleanup"], &s).unwrap(),
            ["fold-batchnorm", "simplify", "precision", "cleanup"]
        );
        // A required pass the list names before it is not inserted again.
        assert_eq!(
            list(&["simplify", "opset", "precision"], &s).unwrap(),
            ["simplify", "opset", "fold-batchnorm", "precision"]
        );
        s.schedule = Some(schedule());
        assert_eq!(list(&["cleanup"], &s).unwrap(), ["cleanup", "schedule"]);
        assert_eq!(
            list(&["cleanup", "schedule"], &s).unwrap(),
            ["cleanup", "schedule"]
        );
    }

    #[test]
    fn requirements_are_checked() {
        let s = PassSettings {
            precision: None,
            schedule: Some(schedule()),
        };
        let m = usage(list(&["schedule", "cleanup"], &s));
        assert!(m.contains("'schedule' must be the last pass"), "{m}");
        let m = usage(list(&["schedule"], &PassSettings::default()));
        assert!(
            m.contains("'schedule' needs a scratchpad size or a target"),
            "{m}"
        );
        let m = usage(list(&["frobnicate"], &s));
        assert!(
            m.contains("unknown pass 'frobnicate' (known: cleanup, fold-batchnorm, simplify, opset, precision, schedule)"),
            "{m}"
        );
        let m = usage(list(&["precision", "simplify"], &s));
        assert!(m.contains("'precision' must run after 'simplify'"), "{m}");
        let mut opts = toml::Table::new();
        opts.insert("level".into(), toml::Value::Integer(2));
        let r = from_list(&[("cleanup", &opts)], &s).map(|pm| pm.names());
        let m = usage(r);
        assert_eq!(m, "pass 'cleanup' takes no option 'level'");
        let r = from_list(&[("precision", &opts)], &s).map(|pm| pm.names());
        assert!(usage(r).contains("pass 'precision' takes no option 'level' (known: size-budget"));
    }

    #[test]
    fn every_pass_is_found_by_its_name_once() {
        let names = names();
        for n in &names {
            assert_eq!(find(n).map(|p| p.name), Some(*n));
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n} twice");
        }
    }
}
