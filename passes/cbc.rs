//! Settings shared by every pass that solves an integer program on CBC.

use good_lp::solvers::coin_cbc::CoinCbcProblem;

/// Silences CBC's own logging: its stdout chatter would mix into the terminal summary and
/// into the JSON a pipeline step may print.
pub fn quiet(model: &mut CoinCbcProblem) {
    model.set_parameter("log", "0");
    model.set_parameter("slogLevel", "0");
    model.set_parameter("logLevel", "0");
}
