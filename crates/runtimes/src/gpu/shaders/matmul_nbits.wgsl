// com.microsoft MatMulNBits: y[m, n] = sum_k a[m, k] * (q(n, k) - z[n, blk]) * s[n, blk]
// (+ bias[n]), blk = k / block. B stays packed as uploaded: bytes [N, n_blocks, blob] read
// from u32 words (little-endian), `bits`-bit values low bits first. The zero points are
// unpacked on the host to one f32 per (n, blk).
// p = [count, K, N, n_blocks, blob, block, bits, has_bias]
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> bw: array<u32>;
@group(0) @binding(3) var<storage, read> sc: array<f32>;
@group(0) @binding(4) var<storage, read> zp: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

fn byte_at(i: u32) -> u32 {
    return (bw[i >> 2u] >> ((i & 3u) * 8u)) & 255u;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let K = p[1]; let N = p[2]; let nb = p[3]; let blob = p[4]; let block = p[5];
    let bits = p[6];
    let mask = (1u << bits) - 1u;
    let n = i % N;
    let m = i / N;
    var acc = 0.0;
    for (var blk = 0u; blk < nb; blk = blk + 1u) {
        let s = sc[n * nb + blk];
        let z = zp[n * nb + blk];
        let base = (n * nb + blk) * blob;
        let k0 = blk * block;
        let k1 = min(k0 + block, K);
        for (var k = k0; k < k1; k = k + 1u) {
            let bit = (k - k0) * bits;
            let at = base + (bit >> 3u);
            let w = byte_at(at) | (byte_at(at + 1u) << 8u);
            let q = f32((w >> (bit & 7u)) & mask);
            acc = acc + a[m * K + k] * ((q - z) * s);
        }
    }
    if (p[7] != 0u) { acc = acc + bias[n]; }
    y[i] = acc;
}
