// 1-D to 3-D max / average / Lp pooling, N C D H W (lower ranks with D = H = 1).
// p = [n, D, H, W, OD, OH, OW, KD, KH, KW, sd, sh, sw, pd, pt, pl, dd, dh, dw,
//      kind(0 max,1 avg,2 lp) @19, count_include_pad, p_norm, pe_d, pe_h, pe_w]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let D = p[1]; let H = p[2]; let W = p[3]; let OD = p[4]; let OH = p[5]; let OW = p[6];
    let ow = i % OW;
    var t = i / OW;
    let oh = t % OH;
    t = t / OH;
    let od = t % OD;
    let nc = t / OD;
    let kind = p[19];
    var acc = 0.0;
    if (kind == 0u) { acc = -3.402823e38; }
    var cnt = 0u;
    let id0 = i32(od * p[10]) - i32(p[13]);
    let ih0 = i32(oh * p[11]) - i32(p[14]);
    let iw0 = i32(ow * p[12]) - i32(p[15]);
    var padded = 0u;
    for (var kd = 0u; kd < p[7]; kd = kd + 1u) {
        let id = id0 + i32(kd * p[16]);
        for (var kh = 0u; kh < p[8]; kh = kh + 1u) {
            let ih = ih0 + i32(kh * p[17]);
            for (var kw = 0u; kw < p[9]; kw = kw + 1u) {
                let iw = iw0 + i32(kw * p[18]);
                // Positions inside the padded input count for count_include_pad.
                let in_pad = id < i32(D + p[22]) && ih < i32(H + p[23]) && iw < i32(W + p[24]);
                if (id < 0 || id >= i32(D) || ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) {
                    if (in_pad) { padded = padded + 1u; }
                    continue;
                }
                let v = x[((nc * D + u32(id)) * H + u32(ih)) * W + u32(iw)];
                if (kind == 0u) { acc = max(acc, v); }
                else if (kind == 1u) { acc = acc + v; }
                else { acc = acc + pow(abs(v), f32(p[21])); }
                cnt = cnt + 1u;
            }
        }
    }
    if (kind == 1u) {
        var d = cnt;
        if (p[20] != 0u) { d = cnt + padded; }
        acc = acc / f32(max(d, 1u));
    } else if (kind == 2u) {
        acc = pow(acc, 1.0 / f32(p[21]));
    }
    y[i] = acc;
}
