// Gather along an axis: p = [n, axis_len, inner, n_indices].
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> ind: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let inner = p[2];
    let nidx = p[3];
    let ii = i % inner;
    let t = i / inner;
    let j = t % nidx;
    let o = t / nidx;
    var idx = ind[j];
    if (idx < 0) { idx = idx + i32(p[1]); }
    let k = u32(clamp(idx, 0, i32(p[1]) - 1));
    y[i] = x[(o * p[1] + k) * inner + ii];
}
