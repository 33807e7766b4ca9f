// Local response normalization across channels: p = [n, C, inner, size, alpha, beta, bias].
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let C = i32(p[1]);
    let inner = p[2];
    let size = i32(p[3]);
    let c = i32((i / inner) % p[1]);
    let lo = max(0, c - (size - 1) / 2);
    let hi = min(C - 1, c + size / 2);
    var s = 0.0;
    for (var k = lo; k <= hi; k = k + 1) {
        let v = x[u32(i32(i) + (k - c) * i32(inner))];
        s = s + v * v;
    }
    let al = bitcast<f32>(p[4]);
    let be = bitcast<f32>(p[5]);
    let bs = bitcast<f32>(p[6]);
    y[i] = x[i] / pow(bs + al / f32(size) * s, be);
}
