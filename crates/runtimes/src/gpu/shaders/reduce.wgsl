// Reductions. p = [n, rank, kind, out_dims[8] @3, in_strides[8] @11, rcount @19,
// rdims[8] @20, rstrides[8] @28]. kind: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 l1, 6 l2,
// 7 sumsquare, 8 logsum, 9 logsumexp, 10 argmax, 11 argmin (argmax/argmin: p[36] = select_last).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<TO>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    var base = 0u;
    var r = i;
    for (var d = i32(p[1]) - 1; d >= 0; d = d - 1) {
        let k = u32(d);
        let c = r % p[3u + k];
        r = r / p[3u + k];
        base = base + c * p[11u + k];
    }
    var total = 1u;
    for (var d = 0u; d < p[19]; d = d + 1u) { total = total * p[20u + d]; }
    let kind = p[2];
    var mx = -3.402823e38;
    if (kind == 9u) {
        for (var j = 0u; j < total; j = j + 1u) {
            var o = base; var q = j;
            for (var d = i32(p[19]) - 1; d >= 0; d = d - 1) {
                let k = u32(d);
                o = o + (q % p[20u + k]) * p[28u + k];
                q = q / p[20u + k];
            }
            mx = max(mx, x[o]);
        }
    }
    var acc = 0.0;
    if (kind == 2u) { acc = -3.402823e38; }
    if (kind == 3u) { acc = 3.402823e38; }
    if (kind == 4u) { acc = 1.0; }
    var best = 0.0;
    var bi = 0u;
    for (var j = 0u; j < total; j = j + 1u) {
        var o = base; var q = j;
        for (var d = i32(p[19]) - 1; d >= 0; d = d - 1) {
            let k = u32(d);
            o = o + (q % p[20u + k]) * p[28u + k];
            q = q / p[20u + k];
        }
        let v = x[o];
        switch kind {
            case 0u, 1u, 8u: { acc = acc + v; }
            case 2u: { acc = max(acc, v); }
            case 3u: { acc = min(acc, v); }
            case 4u: { acc = acc * v; }
            case 5u: { acc = acc + abs(v); }
            case 6u, 7u: { acc = acc + v * v; }
            case 9u: { acc = acc + exp(v - mx); }
            case 10u: {
                if (j == 0u || v > best || (p[36] != 0u && v == best)) { best = v; bi = j; }
            }
            default: {
                if (j == 0u || v < best || (p[36] != 0u && v == best)) { best = v; bi = j; }
            }
        }
    }
    if (kind == 1u) { acc = acc / f32(max(total, 1u)); }
    if (kind == 6u) { acc = sqrt(acc); }
    if (kind == 8u) { acc = log(acc); }
    if (kind == 9u) { acc = log(acc) + mx; }
    if (kind >= 10u) { acc = f32(bi); }
    y[i] = TO(acc);
}
