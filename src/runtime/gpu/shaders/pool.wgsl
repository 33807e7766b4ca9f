// 2-D max / average / Lp pooling, NCHW (1-D pools use H = 1).
// p = [n, H, W, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw, kind(0 max,1 avg,2 lp), count_include_pad, p_norm, pb, pr]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let H = p[1]; let W = p[2]; let OH = p[3]; let OW = p[4];
    let ow = i % OW;
    let t = i / OW;
    let oh = t % OH;
    let nc = t / OH;
    let kind = p[13];
    var acc = 0.0;
    if (kind == 0u) { acc = -3.402823e38; }
    var cnt = 0u;
    let ih0 = i32(oh * p[7]) - i32(p[9]);
    let iw0 = i32(ow * p[8]) - i32(p[10]);
    var padded = 0u;
    for (var kh = 0u; kh < p[5]; kh = kh + 1u) {
        let ih = ih0 + i32(kh * p[11]);
        for (var kw = 0u; kw < p[6]; kw = kw + 1u) {
            let iw = iw0 + i32(kw * p[12]);
            // Positions inside the padded input count for count_include_pad.
            let in_pad = ih < i32(H + p[16]) && iw < i32(W + p[17]);
            if (ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) {
                if (in_pad) { padded = padded + 1u; }
                continue;
            }
            let v = x[(nc * H + u32(ih)) * W + u32(iw)];
            if (kind == 0u) { acc = max(acc, v); }
            else if (kind == 1u) { acc = acc + v; }
            else { acc = acc + pow(abs(v), f32(p[15])); }
            cnt = cnt + 1u;
        }
    }
    if (kind == 1u) {
        var d = cnt;
        if (p[14] != 0u) { d = cnt + padded; }
        acc = acc / f32(max(d, 1u));
    } else if (kind == 2u) {
        acc = pow(acc, 1.0 / f32(p[15]));
    }
    y[i] = acc;
}
