// 1-D to 3-D convolution, N C D H W (lower ranks with D = H = 1), groups, strides,
// dilations, pads; one thread per output element.
// p = [n, C, D, H, W, M, OD, OH, OW, KD, KH, KW, group, sd, sh, sw, pd, pt, pl, dd, dh, dw,
//      has_bias]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let C = p[1]; let D = p[2]; let H = p[3]; let W = p[4]; let M = p[5];
    let OD = p[6]; let OH = p[7]; let OW = p[8];
    let KD = p[9]; let KH = p[10]; let KW = p[11]; let G = p[12];
    let ow = i % OW;
    var t = i / OW;
    let oh = t % OH;
    t = t / OH;
    let od = t % OD;
    t = t / OD;
    let m = t % M;
    let nb = t / M;
    let cpg = C / G;
    let g = m / (M / G);
    var acc = 0.0;
    if (p[22] != 0u) { acc = bias[m]; }
    let id0 = i32(od * p[13]) - i32(p[16]);
    let ih0 = i32(oh * p[14]) - i32(p[17]);
    let iw0 = i32(ow * p[15]) - i32(p[18]);
    for (var c = 0u; c < cpg; c = c + 1u) {
        let xc = (nb * C + g * cpg + c) * D;
        let wc = (m * cpg + c) * KD;
        for (var kd = 0u; kd < KD; kd = kd + 1u) {
            let id = id0 + i32(kd * p[19]);
            if (id < 0 || id >= i32(D)) { continue; }
            let xd = (xc + u32(id)) * H;
            let wd = (wc + kd) * KH;
            for (var kh = 0u; kh < KH; kh = kh + 1u) {
                let ih = ih0 + i32(kh * p[20]);
                if (ih < 0 || ih >= i32(H)) { continue; }
                let xr = (xd + u32(ih)) * W;
                let wr = (wd + kh) * KW;
                for (var kw = 0u; kw < KW; kw = kw + 1u) {
                    let iw = iw0 + i32(kw * p[21]);
                    if (iw < 0 || iw >= i32(W)) { continue; }
                    acc = acc + x[xr + u32(iw)] * w[wr + kw];
                }
            }
        }
    }
    y[i] = acc;
}
