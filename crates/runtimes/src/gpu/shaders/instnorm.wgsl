// InstanceNormalization, one thread per (n, c): p = [rows, C, inner, eps].
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> sc: array<f32>;
@group(0) @binding(3) var<storage, read> bi: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 256u + gid.x;
    if (r >= p[0]) { return; }
    let inner = p[2];
    let c = r % p[1];
    let base = r * inner;
    var s = 0.0;
    for (var j = 0u; j < inner; j = j + 1u) { s = s + x[base + j]; }
    let mu = s / f32(inner);
    var v = 0.0;
    for (var j = 0u; j < inner; j = j + 1u) { let d = x[base + j] - mu; v = v + d * d; }
    let inv = 1.0 / sqrt(v / f32(inner) + bitcast<f32>(p[3]));
    for (var j = 0u; j < inner; j = j + 1u) { y[base + j] = (x[base + j] - mu) * inv * sc[c] + bi[c]; }
}
