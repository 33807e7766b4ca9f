//! Faithfulness of input relevance by pixel flipping (region perturbation, Samek et al.
//! 2017; the ABPC of DynamicLRP's harness).
//!
//! The explained quantity is an [`Objective`]: a fixed linear functional ⟨w, t(x)⟩ of one
//! tensor t of the model (the logit margin of the predicted class over the runner-up for a
//! classifier; the mean probability over the most confident pixels of a map for a detector).
//! LRP starts from w ⊙ t(x), so input relevance sums to about the objective itself.
//!
//! Input patches (p×p, all channels) are ranked by an attribution, then replaced by a
//! blurred copy of the image in steps, most relevant first (MoRF) and least relevant first
//! (LeRF), re-running the model after each step. ABPC = mean over steps of
//! (LeRF − MoRF), summed over inputs and divided by Σ |objective(x)| ([`mean_abpc`]): large
//! when the ranking finds what the model uses; a random ordering gives about 0.

use super::activations::Activations;
use super::config::RuleConfig;
use super::sweep::{explain_from, Start};
use super::tensor::T;
use ndarray::IxDyn;
use onnx_protobuf::ValueInfoProto;
use optimize_ir::data::HostTensor;
use optimize_ir::error::{Error, Result};
use optimize_ir::ir::{Model, ValueType};
use optimize_ir::onnx_io::type_proto::value_type_to_proto;
use optimize_runtimes::{OrtRuntime, OrtSession};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// What is explained and scored: Σ weights ⊙ value(tensor).
#[derive(Clone, Debug)]
pub struct Objective {
    pub tensor: String,
    pub weights: T,
}

impl Objective {
    /// The objective's value on a recorded value of its tensor.
    pub fn score(&self, value: &T) -> f64 {
        (&self.weights * value).sum()
    }

    /// The LRP start: weights ⊙ value (relevance then sums to about the objective).
    pub fn start(&self, value: &T) -> Start {
        Start {
            tensor: self.tensor.clone(),
            relevance: &self.weights * value,
        }
    }

    /// A classifier: the tensor feeding the final Softmax of the first output (else that
    /// output), weights +1 at the predicted class and −1 at the runner-up; for two classes
    /// this is the log-odds of the predicted probability.
    pub fn logit_margin(model: &Model, acts: &Activations) -> Result<Objective> {
        let g = &model.graph;
        let out = g
            .outputs
            .first()
            .ok_or_else(|| Error::Usage("the model has no output".into()))?;
        let mut tensor = out.clone();
        if let Some(p) = g.producer(out) {
            let n = &g.ops[p];
            if n.is("Softmax") || n.is("LogSoftmax") {
                if let Some(i) = n.inputs.first() {
                    tensor = i.clone();
                }
            }
        }
        let v = acts.get(&tensor).map_err(Error::Internal)?;
        if v.len() < 2 {
            return Err(Error::Usage(format!(
                "'{tensor}' has {} element(s): a margin needs two classes",
                v.len()
            )));
        }
        let mut idx: Vec<usize> = (0..v.len()).collect();
        let flat: Vec<f64> = v.iter().copied().collect();
        idx.sort_by(|&a, &b| flat[b].total_cmp(&flat[a]).then(a.cmp(&b)));
        let mut w = T::zeros(v.raw_dim());
        if let Some(s) = w.as_slice_mut() {
            s[idx[0]] = 1.0;
            s[idx[1]] = -1.0;
        }
        Ok(Objective { tensor, weights: w })
    }

    /// A dense map (a detector's probability map): the mean of the first output over its
    /// `fraction` most confident elements on this input (at least one).
    pub fn map_region(model: &Model, acts: &Activations, fraction: f64) -> Result<Objective> {
        let out = model
            .graph
            .outputs
            .first()
            .ok_or_else(|| Error::Usage("the model has no output".into()))?;
        let v = acts.get(out).map_err(Error::Internal)?;
        let flat: Vec<f64> = v.iter().copied().collect();
        let k = ((flat.len() as f64 * fraction).ceil() as usize).clamp(1, flat.len().max(1));
        let mut idx: Vec<usize> = (0..flat.len()).collect();
        idx.sort_by(|&a, &b| flat[b].total_cmp(&flat[a]).then(a.cmp(&b)));
        let mut w = T::zeros(v.raw_dim());
        if let Some(s) = w.as_slice_mut() {
            for &i in &idx[..k] {
                s[i] = 1.0 / k as f64;
            }
        }
        Ok(Objective {
            tensor: out.clone(),
            weights: w,
        })
    }
}

/// Runs the model and reads the objective.
pub struct Scorer {
    session: OrtSession,
    input: String,
    objective: Objective,
}

impl Scorer {
    /// A session on `model` with the objective's tensor exposed as an output.
    pub fn new(model: &Model, objective: Objective) -> Result<Scorer> {
        let mut m = model.clone();
        let g = &mut m.graph;
        let input = g
            .runtime_inputs()
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| Error::Usage("the model has no runtime input".into()))?;
        if !g.outputs.contains(&objective.tensor) {
            let elem = match g.value_type(&objective.tensor) {
                Some(ValueType::Tensor { elem, .. }) => *elem,
                _ => {
                    return Err(Error::Internal(format!(
                        "tensor '{}' has no known type",
                        objective.tensor
                    )))
                }
            };
            let mut vi = ValueInfoProto::new();
            vi.name = objective.tensor.clone();
            vi.type_ = Some(value_type_to_proto(&ValueType::Tensor {
                elem,
                shape: None,
            }))
            .into();
            g.values
                .entry(objective.tensor.clone())
                .or_default()
                .declared = Some(vi);
            g.value_info_names.retain(|v| v != &objective.tensor);
            g.outputs.push(objective.tensor.clone());
        }
        let bytes = optimize_ir::onnx_io::export::to_bytes(&m, &Default::default())?;
        let session = OrtRuntime::get()?.session_from_bytes(&bytes, "the scoring model")?;
        Ok(Scorer {
            session,
            input,
            objective,
        })
    }

    /// The objective on input `x` (shape [1, C, H, W], f32).
    pub fn score(&mut self, x: &[f32], shape: &[usize]) -> Result<f64> {
        let feed = [(self.input.clone(), HostTensor::from_f32(shape.to_vec(), x))];
        let outs = self.session.run(&feed)?;
        let (_, t) = outs
            .into_iter()
            .find(|(n, _)| n == &self.objective.tensor)
            .ok_or_else(|| Error::Internal("the scoring output is missing".into()))?;
        let v = t
            .to_f64()
            .ok_or_else(|| Error::Internal("the scoring output is not numeric".into()))?;
        let v =
            T::from_shape_vec(IxDyn(&t.shape), v).map_err(|e| Error::Internal(e.to_string()))?;
        if v.shape() != self.objective.weights.shape() {
            return Err(Error::Internal(format!(
                "scoring output has shape {:?}, the objective {:?}",
                v.shape(),
                self.objective.weights.shape()
            )));
        }
        Ok(self.objective.score(&v))
    }
}

/// Separable Gaussian blur of each channel of an [N, C, H, W] image (σ in pixels, radius
/// 3σ capped at 25 as in DynamicLRP's 51-pixel kernel, edges clamped): the replacement
/// values of flipped pixels.
pub fn blur(x: &[f32], shape: &[usize], sigma: f64) -> Vec<f32> {
    let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let planes = x.len() / (h * w).max(1);
    let radius = ((3.0 * sigma).ceil() as isize).min(25);
    let k: Vec<f64> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let ks: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / ks).collect();
    let mut out = vec![0f32; x.len()];
    let mut tmp = vec![0f64; h * w];
    for p in 0..planes {
        let src = &x[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            for xx in 0..w {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let sx = (xx as isize + j as isize - radius).clamp(0, w as isize - 1) as usize;
                    acc += kv * src[y * w + sx] as f64;
                }
                tmp[y * w + xx] = acc;
            }
        }
        let dst = &mut out[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            for xx in 0..w {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let sy = (y as isize + j as isize - radius).clamp(0, h as isize - 1) as usize;
                    acc += kv * tmp[sy * w + xx];
                }
                dst[y * w + xx] = acc as f32;
            }
        }
    }
    out
}

/// Sums a per-element map of an [1, C, H, W] input over p×p patches and channels:
/// one score per patch, row-major over the patch grid (edge patches may be smaller).
pub fn patch_scores(map: &[f64], shape: &[usize], patch: usize) -> Vec<f64> {
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let (ph, pw) = (h.div_ceil(patch), w.div_ceil(patch));
    let mut s = vec![0.0; ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                s[(y / patch) * pw + x / patch] += map[(ch * h + y) * w + x];
            }
        }
    }
    s
}

/// Patch indices by descending score (ties by index, so the order is deterministic).
pub fn descending(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// The objective after flipping the patches of `order` in `steps` equal steps (score at
/// 0, 1, …, steps; the last step flips every patch).
pub fn flip_curve(
    scorer: &mut Scorer,
    x: &[f32],
    shape: &[usize],
    baseline: &[f32],
    order: &[usize],
    patch: usize,
    steps: usize,
) -> Result<Vec<f64>> {
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let pw = w.div_ceil(patch);
    let mut cur = x.to_vec();
    let mut curve = vec![scorer.score(&cur, shape)?];
    let mut done = 0;
    for s in 1..=steps {
        let upto = (order.len() * s).div_ceil(steps);
        for &p in &order[done..upto] {
            let (py, px) = (p / pw, p % pw);
            for ch in 0..c {
                for y in py * patch..((py + 1) * patch).min(h) {
                    for xx in px * patch..((px + 1) * patch).min(w) {
                        let i = (ch * h + y) * w + xx;
                        cur[i] = baseline[i];
                    }
                }
            }
        }
        done = upto;
        curve.push(scorer.score(&cur, shape)?);
    }
    Ok(curve)
}

/// Pixel-flipping settings.
#[derive(Clone, Debug)]
pub struct FlipConfig {
    /// Patch side in pixels.
    pub patch: usize,
    /// Flipping steps from the intact to the fully blurred input.
    pub steps: usize,
    /// σ of the Gaussian blur that replaces flipped patches.
    pub sigma: f64,
    /// Seed of the random ordering.
    pub seed: u64,
}

impl Default for FlipConfig {
    fn default() -> Self {
        FlipConfig {
            patch: 4,
            steps: 16,
            sigma: 20.0,
            seed: 0,
        }
    }
}

/// MoRF and LeRF curves (raw objective values) and their ABPC for one ordering of one
/// input, in the objective's units (see [`mean_abpc`] for the normalized figure).
#[derive(Clone, Debug)]
pub struct Curves {
    pub morf: Vec<f64>,
    pub lerf: Vec<f64>,
    pub abpc: f64,
}

/// The three orderings compared on one input.
#[derive(Clone, Debug)]
pub struct SampleFaithfulness {
    /// The objective on the intact input.
    pub objective: f64,
    /// Σ input relevance (≈ objective when relevance is conserved).
    pub relevance_sum: f64,
    pub lrp: Curves,
    pub random: Curves,
    pub magnitude: Curves,
}

fn curves(
    scorer: &mut Scorer,
    x: &[f32],
    shape: &[usize],
    baseline: &[f32],
    most_first: &[usize],
    fc: &FlipConfig,
) -> Result<Curves> {
    let least_first: Vec<usize> = most_first.iter().rev().copied().collect();
    let morf = flip_curve(scorer, x, shape, baseline, most_first, fc.patch, fc.steps)?;
    let lerf = flip_curve(scorer, x, shape, baseline, &least_first, fc.patch, fc.steps)?;
    let abpc = lerf.iter().zip(&morf).map(|(l, m)| l - m).sum::<f64>() / morf.len() as f64;
    Ok(Curves { morf, lerf, abpc })
}

/// Which objective a model is explained for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ObjectiveKind {
    /// [`Objective::logit_margin`].
    LogitMargin,
    /// [`Objective::map_region`] over this fraction of the map.
    MapRegion(f64),
}

/// Explains one input `x` ([1, C, H, W] f32) of `model` with `cfg` and compares the
/// pixel-flipping curves of LRP, random and input-magnitude orderings.
pub fn evaluate(
    model: &Model,
    x: &HostTensor,
    kind: ObjectiveKind,
    cfg: &RuleConfig,
    fc: &FlipConfig,
) -> Result<SampleFaithfulness> {
    if x.shape.len() != 4 || x.shape[0] != 1 {
        return Err(Error::Usage(format!(
            "pixel flipping needs one [1, C, H, W] image, got shape {:?}",
            x.shape
        )));
    }
    let input = model
        .graph
        .runtime_inputs()
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| Error::Usage("the model has no runtime input".into()))?;
    let xs = x
        .as_f32()
        .ok_or_else(|| Error::Usage(format!("input is {}, not float", x.type_string())))?;
    let shape = x.shape.clone();
    let acts = super::activations::Collector::for_config(model, cfg)?
        .run(&[(input.clone(), x.clone())])?;
    let objective = match kind {
        ObjectiveKind::LogitMargin => Objective::logit_margin(model, &acts)?,
        ObjectiveKind::MapRegion(f) => Objective::map_region(model, &acts, f)?,
    };
    let value = acts.get(&objective.tensor).map_err(Error::Internal)?;
    let obj = objective.score(&value);
    let rel = explain_from(model, &acts, &objective.start(&value), cfg, false)?;
    drop(acts);
    let r = rel
        .inputs
        .iter()
        .find(|(n, _)| n == &input)
        .map(|(_, r)| r)
        .ok_or_else(|| Error::Internal("no relevance for the input".into()))?;
    let rmap: Vec<f64> = r.iter().copied().collect();
    let relevance_sum = rmap.iter().sum();
    let mag: Vec<f64> = xs.iter().map(|v| v.abs() as f64).collect();

    let baseline = blur(&xs, &shape, fc.sigma);
    let mut scorer = Scorer::new(model, objective)?;
    let lrp_order = descending(&patch_scores(&rmap, &shape, fc.patch));
    let mag_order = descending(&patch_scores(&mag, &shape, fc.patch));
    let mut rnd_order: Vec<usize> = (0..lrp_order.len()).collect();
    rnd_order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(fc.seed));
    Ok(SampleFaithfulness {
        objective: obj,
        relevance_sum,
        lrp: curves(&mut scorer, &xs, &shape, &baseline, &lrp_order, fc)?,
        random: curves(&mut scorer, &xs, &shape, &baseline, &rnd_order, fc)?,
        magnitude: curves(&mut scorer, &xs, &shape, &baseline, &mag_order, fc)?,
    })
}

/// ABPC of one ordering over several inputs, normalized by the mean |objective|:
/// Σ ABPC / Σ |objective| (a per-input normalization would let inputs with a near-zero
/// objective, an undecided classifier, dominate the mean).
pub fn mean_abpc(samples: &[SampleFaithfulness], pick: impl Fn(&SampleFaithfulness) -> f64) -> f64 {
    let den: f64 = samples.iter().map(|s| s.objective.abs()).sum();
    if den == 0.0 {
        return 0.0;
    }
    samples.iter().map(pick).sum::<f64>() / den
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_and_orders() {
        // 1×1×3×5 map, 2×2 patches: a 2×3 grid with smaller edge patches.
        let map: Vec<f64> = (0..15).map(|v| v as f64).collect();
        let s = patch_scores(&map, &[1, 1, 3, 5], 2);
        assert_eq!(s, vec![12.0, 20.0, 13.0, 21.0, 25.0, 14.0]);
        assert_eq!(descending(&s), vec![4, 3, 1, 5, 2, 0]);
    }

    #[test]
    fn blur_keeps_constants_and_smooths_edges() {
        let x = vec![2.0f32; 12];
        assert!(blur(&x, &[1, 1, 3, 4], 1.0)
            .iter()
            .all(|v| (v - 2.0).abs() < 1e-6));
        let step: Vec<f32> = (0..16).map(|i| if i % 4 < 2 { 0.0 } else { 1.0 }).collect();
        let b = blur(&step, &[1, 1, 4, 4], 1.0);
        assert!(
            b[1] > 0.0 && b[1] < 0.5 && b[2] > 0.5 && b[2] < 1.0,
            "{b:?}"
        );
    }
}
