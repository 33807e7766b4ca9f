// Resize of the last two dims (nearest or bilinear).
// p = [n, H, W, OH, OW, scale_h, scale_w, mode(0 nearest,1 linear), coord, nearest_mode]
// coord: 0 half_pixel, 1 asymmetric, 2 align_corners, 3 pytorch_half_pixel, 4 tf_half_pixel_for_nearest
// nearest_mode: 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn src_coord(o: u32, scale: f32, len_in: u32, len_out: u32) -> f32 {
    let fo = f32(o);
    switch p[8] {
        case 0u: { return (fo + 0.5) / scale - 0.5; }
        case 2u: {
            if (len_out <= 1u) { return 0.0; }
            return fo * f32(len_in - 1u) / f32(len_out - 1u);
        }
        case 3u: {
            if (len_out <= 1u) { return 0.0; }
            return (fo + 0.5) / scale - 0.5;
        }
        case 4u: { return (fo + 0.5) / scale; }
        default: { return fo / scale; }
    }
}

fn nearest(c: f32, len_in: u32) -> u32 {
    var r: f32;
    switch p[9] {
        case 0u: { r = select(round(c), floor(c), fract(c) == 0.5); }
        case 1u: { r = select(round(c), ceil(c), fract(c) == 0.5); }
        case 2u: { r = floor(c); }
        default: { r = ceil(c); }
    }
    return u32(clamp(i32(r), 0, i32(len_in) - 1));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let H = p[1]; let W = p[2]; let OH = p[3]; let OW = p[4];
    let ow = i % OW;
    let t = i / OW;
    let oh = t % OH;
    let nc = t / OH;
    let ch = src_coord(oh, bitcast<f32>(p[5]), H, OH);
    let cw = src_coord(ow, bitcast<f32>(p[6]), W, OW);
    let base = nc * H * W;
    if (p[7] == 0u) {
        y[i] = x[base + nearest(ch, H) * W + nearest(cw, W)];
        return;
    }
    let hc = clamp(ch, 0.0, f32(H - 1u));
    let wc = clamp(cw, 0.0, f32(W - 1u));
    let h0 = u32(floor(hc));
    let w0 = u32(floor(wc));
    let h1 = min(h0 + 1u, H - 1u);
    let w1 = min(w0 + 1u, W - 1u);
    let fh = hc - f32(h0);
    let fw = wc - f32(w0);
    let top = x[base + h0 * W + w0] * (1.0 - fw) + x[base + h0 * W + w1] * fw;
    let bot = x[base + h1 * W + w0] * (1.0 - fw) + x[base + h1 * W + w1] * fw;
    y[i] = top * (1.0 - fh) + bot * fh;
}
