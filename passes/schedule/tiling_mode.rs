//! Whether the scheduler may tile operators (`--tiling auto|on|off`, `tiling` in
//! optimize.toml). The tiling itself lives in `passes/tiling`; this is only the setting.

use super::ScheduleConfig;
use optimize_ir::error::Error;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TilingMode {
    /// Tile only when the scratchpad is below M_R (where whole-tensor scheduling fails).
    #[default]
    Auto,
    /// Also tile at or above M_R, and keep the cheaper of the tiled and the COSMA plans.
    On,
    /// Never tile: below M_R is an error (the behaviour before tiling existed).
    Off,
}

impl FromStr for TilingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<TilingMode, String> {
        match s {
            "auto" => Ok(TilingMode::Auto),
            "on" => Ok(TilingMode::On),
            "off" => Ok(TilingMode::Off),
            other => Err(format!(
                "unknown tiling mode '{other}' (use auto, on or off)"
            )),
        }
    }
}

impl TilingMode {
    pub fn name(self) -> &'static str {
        match self {
            TilingMode::Auto => "auto",
            TilingMode::On => "on",
            TilingMode::Off => "off",
        }
    }
}

/// Applies `--tiling MODE` to the scheduling configuration (an error without one).
pub fn apply(
    cfg: Option<ScheduleConfig>,
    flag: Option<&str>,
) -> Result<Option<ScheduleConfig>, Error> {
    let Some(flag) = flag else { return Ok(cfg) };
    let mode: TilingMode = flag
        .parse()
        .map_err(|e: String| Error::Usage(format!("--tiling: {e}")))?;
    match cfg {
        Some(mut c) => {
            c.options.tiling = mode;
            Ok(Some(c))
        }
        None => Err(Error::Usage(
            "--tiling needs --scratchpad SIZE or --target FILE".into(),
        )),
    }
}
