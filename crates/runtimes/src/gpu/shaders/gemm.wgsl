// Batched y[b, m, n] = alpha * sum_k A[b, m, k] B[b, k, n] + beta * C[m, n], all strided.
// p = [n, M, N, K, alpha, beta, has_c, sam, sak, sbk, sbn, scm, scn, brank,
//      bdims[4] @14, a_bstrides[4] @18, b_bstrides[4] @22,
//      y_off @26, ldy @27, c_off @28, a_off @29, accumulate @30]
// The last five serve weights held in row blocks: each block writes a column range of y
// (y_off, row stride ldy) or adds its partial sum over a K range into y (accumulate).
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> cm: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let M = p[1]; let N = p[2]; let K = p[3];
    let n = i % N;
    var t = i / N;
    let m = t % M;
    t = t / M;
    var ao = 0u;
    var bo = 0u;
    for (var d = i32(p[13]) - 1; d >= 0; d = d - 1) {
        let k = u32(d);
        let c = t % p[14u + k];
        t = t / p[14u + k];
        ao = ao + c * p[18u + k];
        bo = bo + c * p[22u + k];
    }
    ao = ao + m * p[7] + p[29];
    bo = bo + n * p[10];
    var acc = 0.0;
    for (var k = 0u; k < K; k = k + 1u) {
        acc = acc + a[ao + k * p[8]] * b[bo + k * p[9]];
    }
    acc = acc * bitcast<f32>(p[4]);
    let yi = p[26] + (i / N) * p[27] + n;
    if (p[30] != 0u) {
        acc = acc + y[yi];
    } else if (p[6] != 0u) {
        acc = acc + bitcast<f32>(p[5]) * cm[p[28] + m * p[11] + n * p[12]];
    }
    y[yi] = acc;
}
