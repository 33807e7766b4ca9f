// Pad: p = [n, rank, mode(0 constant,1 reflect,2 edge,3 wrap), value_bits, out_dims[8] @4,
// in_dims[8] @12, pads_begin(i32)[8] @20].
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    var r = i;
    var off = 0u;
    var stride = 1u;
    for (var d = i32(p[1]) - 1; d >= 0; d = d - 1) {
        let k = u32(d);
        let oc = r % p[4u + k];
        r = r / p[4u + k];
        let n = i32(p[12u + k]);
        var c = i32(oc) - bitcast<i32>(p[20u + k]);
        if (c < 0 || c >= n) {
            switch p[2] {
                case 0u: { y[i] = p[3]; return; }
                case 1u: {
                    let period = max(2 * (n - 1), 1);
                    c = c % period;
                    if (c < 0) { c = c + period; }
                    if (c >= n) { c = period - c; }
                }
                case 2u: { c = clamp(c, 0, n - 1); }
                default: { c = c % n; if (c < 0) { c = c + n; } }
            }
        }
        off = off + u32(c) * stride;
        stride = stride * u32(n);
    }
    y[i] = x[off];
}
