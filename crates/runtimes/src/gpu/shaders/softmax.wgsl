// Softmax / LogSoftmax / Hardmax over an axis: p = [rows, len, inner, kind(0 soft, 1 log, 2 hard)].
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 256u + gid.x;
    if (r >= p[0]) { return; }
    let L = p[1]; let inner = p[2];
    let base = (r / inner) * L * inner + r % inner;
    var mx = -3.402823e38;
    var arg = 0u;
    for (var j = 0u; j < L; j = j + 1u) {
        let v = x[base + j * inner];
        if (v > mx) { mx = v; arg = j; }
    }
    if (p[3] == 2u) {
        for (var j = 0u; j < L; j = j + 1u) { y[base + j * inner] = select(0.0, 1.0, j == arg); }
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < L; j = j + 1u) { s = s + exp(x[base + j * inner] - mx); }
    for (var j = 0u; j < L; j = j + 1u) {
        let v = x[base + j * inner] - mx;
        if (p[3] == 1u) { y[base + j * inner] = v - log(s); }
        else { y[base + j * inner] = exp(v) / s; }
    }
}
