// y = cond ? a : b with broadcasting: p = [n, rank, dims[8], c_strides[8], a_strides[8], b_strides[8]].
@group(0) @binding(1) var<storage, read> xc: array<i32>;
@group(0) @binding(2) var<storage, read> xa: array<u32>;
@group(0) @binding(3) var<storage, read> xb: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p[0]) { return; }
    var ic = 0u;
    var ia = 0u;
    var ib = 0u;
    var r = i;
    for (var d = i32(p[1]) - 1; d >= 0; d = d - 1) {
        let k = u32(d);
        let c = r % p[2u + k];
        r = r / p[2u + k];
        ic = ic + c * p[10u + k];
        ia = ia + c * p[18u + k];
        ib = ib + c * p[26u + k];
    }
    y[i] = select(xb[ib], xa[ia], xc[ic] != 0);
}
