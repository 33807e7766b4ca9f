// DequantizeLinear: y = (x - zp) * scale. p = [n, mode(0 tensor,1 axis,2 blocked), inner,
// axis_len, block, n_blocks, has_zp]
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read> sc: array<f32>;
@group(0) @binding(3) var<storage, read> zp: array<i32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    let si = qparam_index(i);
    var z = 0;
    if (p[6] != 0u) { z = zp[si]; }
    y[i] = f32(x[i] - z) * sc[si];
}
