// 2-D transposed convolution, NCHW; weight [C, M/G, KH, KW].
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
    let mpg = M / G;
    let g = m / mpg;
    var acc = 0.0;
    if (p[16] != 0u) { acc = bias[m]; }
    for (var c = 0u; c < cpg; c = c + 1u) {
        let ic = g * cpg + c;
        for (var kh = 0u; kh < KH; kh = kh + 1u) {
            let th = i32(oh) + i32(p[12]) - i32(kh * p[14]);
            if (th < 0 || th % i32(p[10]) != 0) { continue; }
            let ih = th / i32(p[10]);
            if (ih >= i32(H)) { continue; }
            for (var kw = 0u; kw < KW; kw = kw + 1u) {
                let tw = i32(ow) + i32(p[13]) - i32(kw * p[15]);
                if (tw < 0 || tw % i32(p[11]) != 0) { continue; }
                let iw = tw / i32(p[11]);
                if (iw >= i32(W)) { continue; }
                acc = acc + x[((nb * C + ic) * H + u32(ih)) * W + u32(iw)]
                    * w[((ic * mpg + (m % mpg)) * KH + kh) * KW + kw];
            }
        }
    }
    y[i] = acc;
}
