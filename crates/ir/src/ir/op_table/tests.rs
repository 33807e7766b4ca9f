//! The table reproduces, trait by trait, the op lists it replaced (names and sets as they
//! were, so that a row edited by mistake fails here).

use super::*;
use std::collections::BTreeSet;

fn check(domain: &str, t: Trait, former: &[&str]) {
    let got: BTreeSet<&str> = ops_with(domain, t).into_iter().collect();
    let want: BTreeSet<&str> = former.iter().copied().collect();
    assert_eq!(got, want, "{t:?} in domain '{domain}'");
    for op in former {
        assert!(has(domain, op, t), "{op}: {t:?}");
    }
}

/// Was `crates/ir/src/shape/elementwise.rs:UNARY_SAME`.
#[test]
fn same_shape_unary_is_shape_unary_same() {
    check(
        "",
        Trait::SameShapeUnary,
        &[
            "Abs",
            "Neg",
            "Relu",
            "Sigmoid",
            "Tanh",
            "Exp",
            "Log",
            "Sqrt",
            "Reciprocal",
            "Floor",
            "Ceil",
            "Round",
            "Sign",
            "Erf",
            "Elu",
            "Selu",
            "LeakyRelu",
            "HardSigmoid",
            "HardSwish",
            "Softplus",
            "Softsign",
            "Shrink",
            "ThresholdedRelu",
            "Celu",
            "Gelu",
            "Mish",
            "Sin",
            "Cos",
            "Tan",
            "Asin",
            "Acos",
            "Atan",
            "Sinh",
            "Cosh",
            "Asinh",
            "Acosh",
            "Atanh",
            "Softmax",
            "LogSoftmax",
            "Hardmax",
            "BitwiseNot",
            "CumSum",
            "Trilu",
            "LpNormalization",
            "MeanVarianceNormalization",
            "LRN",
            "Clip",
            "ReverseSequence",
            "Swish",
        ],
    );
}

/// Was `crates/ir/src/shape/elementwise.rs:BINARY_ARITH`.
#[test]
fn broadcast_arith_is_shape_binary_arith() {
    check(
        "",
        Trait::BroadcastArith,
        &[
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Mod",
            "BitShift",
            "BitwiseAnd",
            "BitwiseOr",
            "BitwiseXor",
        ],
    );
}

/// Was `crates/ir/src/shape/elementwise.rs:COMPARE`.
#[test]
fn compare_is_shape_compare() {
    check(
        "",
        Trait::Compare,
        &[
            "Equal",
            "Less",
            "Greater",
            "LessOrEqual",
            "GreaterOrEqual",
            "And",
            "Or",
            "Xor",
        ],
    );
}

/// Was `crates/ir/src/shape/elementwise.rs:VARIADIC`.
#[test]
fn variadic_is_shape_variadic() {
    check("", Trait::Variadic, &["Sum", "Max", "Min", "Mean"]);
}

/// Was `crates/ir/src/shape/reduce.rs:REDUCE`.
#[test]
fn reduce_is_shape_reduce() {
    check(
        "",
        Trait::Reduce,
        &[
            "ReduceMean",
            "ReduceSum",
            "ReduceMax",
            "ReduceMin",
            "ReduceProd",
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceSumSquare",
        ],
    );
}

/// Was `crates/runtimes/src/gpu/ops/mod.rs:SUPPORTED`.
#[test]
fn gpu_is_gpu_supported() {
    check(
        "",
        Trait::Gpu,
        &[
            "Relu",
            "Sigmoid",
            "HardSigmoid",
            "HardSwish",
            "Tanh",
            "Exp",
            "Log",
            "Sqrt",
            "Abs",
            "Neg",
            "Reciprocal",
            "Floor",
            "Ceil",
            "Round",
            "Erf",
            "Elu",
            "Selu",
            "LeakyRelu",
            "Softplus",
            "Softsign",
            "Sign",
            "Shrink",
            "Clip",
            "Not",
            "Sin",
            "Cos",
            "Gelu",
            "Mish",
            "ThresholdedRelu",
            "Cast",
            "CastLike",
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Pow",
            "Max",
            "Min",
            "Sum",
            "Mean",
            "PRelu",
            "Equal",
            "Less",
            "Greater",
            "LessOrEqual",
            "GreaterOrEqual",
            "And",
            "Or",
            "Xor",
            "Mod",
            "Where",
            "Identity",
            "Dropout",
            "Reshape",
            "Flatten",
            "Squeeze",
            "Unsqueeze",
            "Transpose",
            "Expand",
            "Tile",
            "Slice",
            "Concat",
            "Split",
            "Gather",
            "Pad",
            "ConstantOfShape",
            "Constant",
            "Shape",
            "Size",
            "Range",
            "Conv",
            "ConvTranspose",
            "MaxPool",
            "AveragePool",
            "LpPool",
            "GlobalAveragePool",
            "GlobalMaxPool",
            "GlobalLpPool",
            "Gemm",
            "MatMul",
            "BatchNormalization",
            "InstanceNormalization",
            "LRN",
            "Softmax",
            "LogSoftmax",
            "Hardmax",
            "Resize",
            "Upsample",
            "ReduceSum",
            "ReduceMean",
            "ReduceMax",
            "ReduceMin",
            "ReduceProd",
            "ReduceL1",
            "ReduceL2",
            "ReduceSumSquare",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ArgMax",
            "ArgMin",
            "QuantizeLinear",
            "DequantizeLinear",
        ],
    );
}

/// Was `crates/runtimes/src/gpu/ops/mod.rs:SUPPORTED_MS`.
#[test]
fn gpu_in_com_microsoft_is_gpu_supported_ms() {
    check(
        "com.microsoft",
        Trait::Gpu,
        &["MatMulNBits", "QuantizeLinear", "DequantizeLinear"],
    );
}

/// Was `crates/runtimes/src/gpu/ops/mod.rs:EXACT_IN_HALF`.
#[test]
fn exact_in_half_is_gpu_exact_in_half() {
    check(
        "",
        Trait::ExactInHalf,
        &[
            "Cast",
            "CastLike",
            "Identity",
            "Dropout",
            "Reshape",
            "Flatten",
            "Squeeze",
            "Unsqueeze",
            "Transpose",
            "Expand",
            "Tile",
            "Slice",
            "Concat",
            "Split",
            "Gather",
            "Relu",
            "Abs",
            "Neg",
            "Max",
            "Min",
            "Where",
            "MaxPool",
            "GlobalMaxPool",
        ],
    );
}

/// Was `passes/relevance/rules/mod.rs:PASS_OPS`.
#[test]
fn relevance_pass_through_is_pass_ops() {
    check(
        "",
        Trait::RelevancePassThrough,
        &[
            "Relu",
            "LeakyRelu",
            "PRelu",
            "Elu",
            "Selu",
            "Celu",
            "ThresholdedRelu",
            "Sigmoid",
            "HardSigmoid",
            "HardSwish",
            "Tanh",
            "Gelu",
            "Erf",
            "Softplus",
            "Softsign",
            "Mish",
            "Clip",
            "Exp",
            "Log",
            "Sqrt",
            "Reciprocal",
            "Neg",
            "Abs",
            "Sign",
            "Floor",
            "Ceil",
            "Round",
            "Sin",
            "Cos",
            "Identity",
            "Dropout",
            "Cast",
            "CastLike",
            "QuantizeLinear",
            "DequantizeLinear",
            "LogSoftmax",
            "LayerNormalization",
            "InstanceNormalization",
            "GroupNormalization",
            "LRN",
            "MeanVarianceNormalization",
            "LpNormalization",
            "Shrink",
            "Swish",
        ],
    );
}

/// Was `passes/relevance/rules/mod.rs:RULE_OPS`.
#[test]
fn relevance_own_rule_is_rule_ops() {
    check(
        "",
        Trait::RelevanceOwnRule,
        &[
            "Conv",
            "ConvTranspose",
            "Gemm",
            "MatMul",
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Sum",
            "Mean",
            "Max",
            "Min",
            "Pow",
            "Where",
            "Softmax",
            "BatchNormalization",
            "MaxPool",
            "AveragePool",
            "GlobalAveragePool",
            "GlobalMaxPool",
            "ReduceMean",
            "ReduceSum",
            "ReduceMax",
            "ReduceMin",
            "Reshape",
            "Flatten",
            "Squeeze",
            "Unsqueeze",
            "Transpose",
            "Concat",
            "Split",
            "Slice",
            "Gather",
            "Expand",
            "Tile",
            "Pad",
            "Resize",
            "Upsample",
            "DepthToSpace",
            "SpaceToDepth",
        ],
    );
}

/// Was `passes/tiling/classify.rs:ELEMENTWISE`.
#[test]
fn pointwise_is_tiling_elementwise() {
    check(
        "",
        Trait::Pointwise,
        &[
            "Relu",
            "LeakyRelu",
            "PRelu",
            "Sigmoid",
            "HardSigmoid",
            "HardSwish",
            "Tanh",
            "Clip",
            "Exp",
            "Log",
            "Abs",
            "Neg",
            "Sqrt",
            "Reciprocal",
            "Erf",
            "Elu",
            "Selu",
            "Celu",
            "Softplus",
            "Softsign",
            "Mish",
            "Gelu",
            "Identity",
            "Cast",
            "Floor",
            "Ceil",
            "Round",
            "Sign",
            "Not",
            "QuantizeLinear",
            "DequantizeLinear",
            "BatchNormalization",
            "Dropout",
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Pow",
            "Max",
            "Min",
            "Sum",
            "Mean",
            "And",
            "Or",
            "Xor",
            "Equal",
            "Greater",
            "Less",
            "GreaterOrEqual",
            "LessOrEqual",
            "Where",
            "Mod",
        ],
    );
}

/// Was `passes/precision/candidates.rs:candidates matches!`.
#[test]
fn quantizable_is_precision_candidates() {
    check(
        "",
        Trait::Quantizable,
        &["Conv", "MatMul", "Gemm", "ConvTranspose"],
    );
}

/// The candidates read their weight from input 1; `ai.onnx` is the default domain; an op of
/// another domain with a default-domain name has none of the default op's traits.
#[test]
fn weight_slot_and_domains() {
    for op in ["Conv", "ConvTranspose", "MatMul", "Gemm"] {
        assert_eq!(weight_input("", op), Some(1), "{op}");
        assert_eq!(weight_input("ai.onnx", op), Some(1), "{op}");
    }
    assert_eq!(weight_input("", "Relu"), None);
    assert!(has("ai.onnx", "Relu", Trait::Gpu));
    assert!(!has("com.example", "Relu", Trait::Gpu));
    assert!(!has("com.microsoft", "Relu", Trait::Gpu));
    assert_eq!(relevance_rule("", "Relu"), Some(RelevanceRule::PassThrough));
    assert_eq!(relevance_rule("", "Conv"), Some(RelevanceRule::Own));
    assert_eq!(relevance_rule("", "NonMaxSuppression"), None);
}
