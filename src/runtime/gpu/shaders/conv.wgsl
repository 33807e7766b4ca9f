// 2-D convolution, NCHW, groups, strides, dilations, pads; one thread per output element.
// p = [n, C, H, W, M, OH, OW, KH, KW, group, sh, sw, pt, pl, dh, dw, has_bias]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let C = p[1]; let H = p[2]; let W = p[3]; let M = p[4]; let OH = p[5]; let OW = p[6];
    let KH = p[7]; let KW = p[8]; let G = p[9];
    let ow = i % OW;
    var t = i / OW;
    let oh = t % OH;
    t = t / OH;
    let m = t % M;
    let nb = t / M;
    let cpg = C / G;
    let g = m / (M / G);
    var acc = 0.0;
    if (p[16] != 0u) { acc = bias[m]; }
    let ih0 = i32(oh * p[10]) - i32(p[12]);
    let iw0 = i32(ow * p[11]) - i32(p[13]);
    for (var c = 0u; c < cpg; c = c + 1u) {
        let xc = (nb * C + g * cpg + c) * H;
        let wc = (m * cpg + c) * KH;
        for (var kh = 0u; kh < KH; kh = kh + 1u) {
            let ih = ih0 + i32(kh * p[14]);
            if (ih < 0 || ih >= i32(H)) { continue; }
            let xr = (xc + u32(ih)) * W;
            let wr = (wc + kh) * KW;
            for (var kw = 0u; kw < KW; kw = kw + 1u) {
                let iw = iw0 + i32(kw * p[15]);
                if (iw < 0 || iw >= i32(W)) { continue; }
                acc = acc + x[xr + u32(iw)] * w[wr + kw];
            }
        }
    }
    y[i] = acc;
}
