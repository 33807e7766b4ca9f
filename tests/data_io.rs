//! Input-data layer: real ONNX test folders, NumPy-written .npy files, and sample folders.

use optimize::data::{
    compare, load_expected_outputs, load_input_dir, load_tensor_file, npy, pb, random_inputs,
    HostTensor, InputSpec, Metrics,
};
use optimize::ir::DataType;
use std::fs;
use std::path::{Path, PathBuf};

fn onnx_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/onnx-data")
}

/// The ONNX test data lives in `.deps` (fetched by `scripts/setup.sh`); fail when absent.
fn require(dir: &Path) {
    assert!(
        dir.is_dir(),
        "{} not found: run scripts/setup.sh",
        dir.display()
    );
}

fn f32_spec(name: &str, dims: &[i64]) -> InputSpec {
    InputSpec::fixed(name, DataType::Float, dims)
}

#[test]
fn pytorch_converted_conv2d() {
    let dir = onnx_data().join("pytorch-converted/test_Conv2d/test_data_set_0");
    require(&dir);
    // Graph inputs "1" and "2" are initializers; the only runtime input is "0".
    let specs = [f32_spec("0", &[2, 3, 7, 5])];
    let samples = load_input_dir(&dir, &specs).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].id, "test_data_set_0");
    let (name, x) = &samples[0].values[0];
    assert_eq!(
        (name.as_str(), x.type_string().as_str()),
        ("0", "float[2,3,7,5]")
    );
    assert_eq!(
        x.to_f64().unwrap()[..3],
        [-0.982118546962738, 0.5474972724914551, 0.13311725854873657]
    );

    let outs = load_expected_outputs(&dir).unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].0, 0);
    assert_eq!(outs[0].1.type_string(), "float[2,4,5,4]");
    assert_eq!(
        outs[0].1.to_f64().unwrap()[..3],
        [
            -0.37131041288375854,
            -1.209028959274292,
            -0.5009650588035583
        ]
    );

    // The model folder itself (model.onnx + test_data_set_0/) reads as one sample per subfolder.
    let samples = load_input_dir(dir.parent().unwrap(), &specs).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].id, "test_data_set_0");

    // Wrong expectations are reported with the file and both types.
    let err = load_input_dir(&dir, &[f32_spec("0", &[2, 3, 7, 6])])
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("input_0.pb: input '0' expects float[2,3,7,6], file holds float[2,3,7,5] (dimension 3 is 5, expected 6)"),
        "{err}"
    );
    let err = load_input_dir(
        &dir,
        &[InputSpec::fixed("0", DataType::Float16, &[2, 3, 7, 5])],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("expects float16[2,3,7,5], file holds float[2,3,7,5]"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn pytorch_converted_embedding_int64() {
    let dir = onnx_data().join("pytorch-converted/test_Embedding/test_data_set_0");
    require(&dir);
    let specs = [InputSpec::new("0", DataType::Int64, vec![None, Some(4)])];
    let samples = load_input_dir(&dir, &specs).unwrap();
    assert_eq!(
        samples[0].values[0].1,
        HostTensor::from_i64(vec![1, 4], &[0, 1, 0, 1])
    );
    assert_eq!(
        load_expected_outputs(&dir).unwrap()[0].1.type_string(),
        "float[1,4,3]"
    );
}

#[test]
fn every_pytorch_converted_folder_loads() {
    let root = onnx_data().join("pytorch-converted");
    require(&root);
    let mut count = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path().join("test_data_set_0");
        if !dir.is_dir() {
            continue;
        }
        // Spec from the file itself: this checks folder handling and .pb decoding of every file.
        let x = load_tensor_file(&dir.join("input_0.pb")).unwrap();
        let spec = InputSpec::fixed(
            "0",
            x.dtype,
            &x.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
        );
        let samples = load_input_dir(&dir, &[spec]).unwrap();
        assert_eq!(samples[0].values[0].1, x);
        x.check_consistent().unwrap();
        let outs = load_expected_outputs(&dir).unwrap();
        assert_eq!(outs.len(), 1, "{}", dir.display());
        outs[0].1.check_consistent().unwrap();
        // The reference against a copy with its largest element moved by 1: the decoded
        // values must be compared element by element (not the bytes alone), so the
        // difference is exactly that element's change, and nothing else differs.
        let reference = &outs[0].1;
        let mut v = reference.as_f32().expect("a float output");
        let (i, _) = v
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .expect("a non-empty output");
        let before = v[i];
        v[i] += 1.0;
        let nudged = HostTensor::from_f32(reference.shape.clone(), &v);
        let d = (v[i] as f64 - before as f64).abs();
        let m = compare(reference, &nudged).unwrap();
        assert!(!m.bit_identical, "{}", dir.display());
        assert_eq!(m.max_abs_err, d, "{}", dir.display());
        assert_eq!(
            m.max_rel_err,
            d / (before.abs().max(v[i].abs()) as f64),
            "{}",
            dir.display()
        );
        assert!(
            m.cosine < 1.0 || reference.element_count() == 1,
            "{}: {m:?}",
            dir.display()
        );
        assert_eq!(m.elements, reference.element_count());
        count += 1;
    }
    assert!(count >= 80, "only {count} folders");
}

#[test]
fn sequence_model_three_inputs() {
    let dir = onnx_data().join("simple/test_sequence_model1/test_data_set_0");
    require(&dir);
    // Runtime inputs X, Y, Z; pos and pos_at have initializers, so they are not runtime inputs.
    let specs = [
        f32_spec("X", &[2, 3, 4]),
        f32_spec("Y", &[1, 3, 4]),
        f32_spec("Z", &[3, 3, 4]),
    ];
    let samples = load_input_dir(&dir, &specs).unwrap();
    assert_eq!(samples.len(), 1);
    let s = &samples[0];
    let names: Vec<&str> = s.values.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["X", "Y", "Z"]);
    assert!(s.values[0].1.as_f32().unwrap().iter().all(|&v| v == 1.0));
    assert!(s.values[1].1.as_f32().unwrap().iter().all(|&v| v == 0.0));
    assert!(s.values[2].1.as_f32().unwrap().iter().all(|&v| v == 2.0));
    // The tensor names stored in the .pb files agree.
    assert_eq!(pb::read_tensor_pb(&dir.join("input_2.pb")).unwrap().0, "Z");
    let outs = load_expected_outputs(&dir).unwrap();
    assert_eq!(outs[0].1.type_string(), "float[1,3,4]");

    // The parent folder (model.onnx + test_data_set_0/) works as a folder of samples.
    assert_eq!(
        load_input_dir(dir.parent().unwrap(), &specs).unwrap(),
        samples
    );

    // A fourth runtime input the folder does not provide is reported.
    let mut more = specs.to_vec();
    more.push(InputSpec::fixed("pos", DataType::Int64, &[]));
    let err = load_input_dir(&dir, &more).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "test_data_set_0: missing input 'pos' (expected pos.npy, pos.pb or input_3.pb)"
        ),
        "{err}"
    );
    // Swapped expectations: input_1.pb holds Y's shape, not Z's.
    let swapped = [specs[0].clone(), specs[2].clone(), specs[1].clone()];
    let err = load_input_dir(&dir, &swapped).unwrap_err().to_string();
    assert!(
        err.contains("input_1.pb: input 'Z' expects float[3,3,4], file holds float[1,3,4]"),
        "{err}"
    );
}

/// A model with several inputs, one with characters that cannot appear in file names.
fn multi_specs() -> Vec<InputSpec> {
    vec![
        InputSpec::new("encoder/ids:0", DataType::Int64, vec![Some(1), None]),
        InputSpec::new("state", DataType::Float, vec![Some(1), Some(4)]),
        InputSpec::fixed("flag", DataType::Bool, &[]),
    ]
}

fn write_multi_sample(dir: &Path, i: usize, seq: usize) {
    fs::create_dir_all(dir).unwrap();
    let ids: Vec<i64> = (0..seq as i64).collect();
    npy::write_npy(
        &dir.join("encoder_ids_0.npy"),
        &HostTensor::from_i64(vec![1, seq], &ids),
    )
    .unwrap();
    let state = HostTensor::from_f32(vec![1, 4], &[i as f32, 1.0, 2.0, 3.0]);
    pb::write_tensor_pb(&dir.join("state.pb"), &state, "state").unwrap();
    npy::write_npy(
        &dir.join("input_2.npy"),
        &HostTensor::new(DataType::Bool, vec![], vec![(i % 2) as u8]),
    )
    .unwrap();
    // Reference outputs are not inputs.
    npy::write_npy(
        &dir.join("output_0.npy"),
        &HostTensor::from_f32(vec![2], &[i as f32, -1.0]),
    )
    .unwrap();
}

#[test]
fn multi_input_named_npy_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (i, name) in ["sample10", "sample2", "sample1"].iter().enumerate() {
        write_multi_sample(&root.join(name), i, 3 + i);
    }
    let specs = multi_specs();
    let samples = load_input_dir(root, &specs).unwrap();
    let ids: Vec<&str> = samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["sample1", "sample2", "sample10"]);
    let s1 = &samples[0];
    assert_eq!(s1.values[0].0, "encoder/ids:0");
    assert_eq!(
        s1.values[0].1,
        HostTensor::from_i64(vec![1, 5], &[0, 1, 2, 3, 4])
    );
    assert_eq!(s1.values[1].1.as_f32().unwrap(), [2.0, 1.0, 2.0, 3.0]);
    assert_eq!(s1.values[2].1.bytes, [0]);
    let outs = load_expected_outputs(&root.join("sample10")).unwrap();
    assert_eq!(outs, vec![(0, HostTensor::from_f32(vec![2], &[0.0, -1.0]))]);

    // A single sample folder is accepted directly.
    let one = load_input_dir(&root.join("sample2"), &specs).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], samples[1]);

    // Wrong dtype, named file.
    let bad = root.join("sample2");
    npy::write_npy(
        &bad.join("state.npy"),
        &HostTensor::from_i64(vec![1, 4], &[0; 4]),
    )
    .unwrap();
    fs::remove_file(bad.join("state.pb")).unwrap();
    let err = load_input_dir(root, &specs).unwrap_err().to_string();
    assert!(
        err.contains("sample2/state.npy: input 'state' expects float[1,4], file holds int64[1,4]"),
        "{err}"
    );
    // Wrong rank.
    npy::write_npy(
        &bad.join("state.npy"),
        &HostTensor::from_f32(vec![4], &[0.0; 4]),
    )
    .unwrap();
    let err = load_input_dir(root, &specs).unwrap_err().to_string();
    assert!(
        err.contains("expects float[1,4], file holds float[4]"),
        "{err}"
    );
    // An extra unknown file.
    fs::remove_file(bad.join("state.npy")).unwrap();
    write_multi_sample(&bad, 1, 4);
    fs::write(bad.join("extra.npy"), b"junk").unwrap();
    let err = load_input_dir(root, &specs).unwrap_err().to_string();
    assert!(
        err.contains("extra.npy: does not match any model input"),
        "{err}"
    );
    fs::write(bad.join("extra.npy"), b"junk").unwrap();
    fs::rename(bad.join("extra.npy"), bad.join("readme.txt")).unwrap();
    let err = load_input_dir(root, &specs).unwrap_err().to_string();
    assert!(err.contains("readme.txt: unexpected file"), "{err}");
    fs::remove_file(bad.join("readme.txt")).unwrap();
    // A corrupt data file names itself.
    fs::write(bad.join("state.pb"), b"\x08").unwrap();
    let err = load_input_dir(root, &specs).unwrap_err().to_string();
    assert!(err.contains("sample2/state.pb"), "{err}");
}

#[test]
fn random_samples_match_specs() {
    let specs = multi_specs();
    let err = random_inputs(&specs, 1, 2).unwrap_err().to_string();
    assert!(
        err.contains("'encoder/ids:0'") && err.contains("--input-shape encoder/ids:0=1xN"),
        "{err}"
    );
    let shapes = optimize::data::parse_input_shapes(&["encoder/ids:0=1x6".to_string()]).unwrap();
    let fixed = optimize::data::apply_input_shapes(&specs, &shapes).unwrap();
    let samples = random_inputs(&fixed, 1, 2).unwrap();
    assert_eq!(samples.len(), 2);
    for s in &samples {
        for (spec, (_, t)) in fixed.iter().zip(&s.values) {
            spec.check(Path::new(&s.id), t).unwrap();
        }
    }
    // Random samples written to a folder load back identically.
    let tmp = tempfile::tempdir().unwrap();
    for s in &samples {
        let d = tmp.path().join(&s.id);
        fs::create_dir(&d).unwrap();
        for (k, (_, t)) in s.values.iter().enumerate() {
            pb::write_tensor_pb(&d.join(format!("input_{k}.pb")), t, "").unwrap();
        }
    }
    assert_eq!(load_input_dir(tmp.path(), &specs).unwrap(), samples);
}

// Files written by NumPy 2.4 (`np.save` / `np.lib.format.write_array`).
/// `>f8` shape (2, 3), fortran_order True, format 1.0.
const BE_F8_FORTRAN: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }                                                           \n\x00\x00\x00\x00\x00\x00\x00\x00@\x08\x00\x00\x00\x00\x00\x00?\xf0\x00\x00\x00\x00\x00\x00@\x10\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00\x00@\x14\x00\x00\x00\x00\x00\x00";
/// `<i2` shape (2, 3, 4), fortran_order True, format 1.0.
const LE_I2_FORTRAN_3D: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3, 4), }                                                        \n\xf4\xff\x00\x00\xf8\xff\x04\x00\xfc\xff\x08\x00\xf5\xff\x01\x00\xf9\xff\x05\x00\xfd\xff\x09\x00\xf6\xff\x02\x00\xfa\xff\x06\x00\xfe\xff\n\x00\xf7\xff\x03\x00\xfb\xff\x07\x00\xff\xff\x0b\x00";
/// `<U5` shape (2, 2), fortran_order False, format 1.0.
const UNICODE: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<U5', 'fortran_order': False, 'shape': (2, 2), }                                                          \na\x00\x00\x00b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00h\x00\x00\x00\xe9\x00\x00\x00l\x00\x00\x00l\x00\x00\x00o\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00z\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
/// `|b1` shape (3,), fortran_order False, format 2.0.
const BOOL_V2: &[u8] = b"\x93NUMPY\x02\x00t\x00\x00\x00{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }                                                          \n\x01\x00\x01";
/// `<u4` shape (3,), fortran_order False, format 3.0.
const U4_V3: &[u8] = b"\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }                                                          \n\x01\x00\x00\x00\x02\x00\x00\x00\x00(k\xee";
/// `<f2` shape (), fortran_order False, format 1.0.
const F2_SCALAR: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f2', 'fortran_order': False, 'shape': (), }                                                              \n\x00>";
/// `>i8` shape (2,), fortran_order False, format 1.0.
const BE_I8: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }                                                            \n\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x01\x00\x00\x00\x00\x00";

#[test]
fn numpy_written_files() {
    let read = |b: &[u8]| npy::decode_npy(b).unwrap();
    let t = read(BE_F8_FORTRAN);
    assert_eq!((t.dtype, t.shape.clone()), (DataType::Double, vec![2, 3]));
    assert_eq!(t.to_f64().unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let t = read(LE_I2_FORTRAN_3D);
    assert_eq!((t.dtype, t.shape.clone()), (DataType::Int16, vec![2, 3, 4]));
    assert_eq!(
        t.to_f64().unwrap(),
        (-12..12).map(f64::from).collect::<Vec<_>>()
    );
    let t = read(UNICODE);
    assert_eq!((t.dtype, t.shape.clone()), (DataType::String, vec![2, 2]));
    assert_eq!(t.strings, ["ab", "héllo", "", "z"]);
    let t = read(BOOL_V2);
    assert_eq!((t.dtype, t.bytes.clone()), (DataType::Bool, vec![1, 0, 1]));
    let t = read(U4_V3);
    assert_eq!(
        (t.dtype, t.to_f64().unwrap()),
        (DataType::Uint32, vec![1.0, 2.0, 4e9])
    );
    let t = read(F2_SCALAR);
    assert_eq!(
        (t.dtype, t.shape.clone(), t.to_f64().unwrap()),
        (DataType::Float16, vec![], vec![1.5])
    );
    let t = read(BE_I8);
    assert_eq!(t, HostTensor::from_i64(vec![2], &[-1, 1 << 40]));

    // What we write is byte-for-byte what NumPy writes for C-ordered little-endian data.
    let ours = npy::encode_npy(&read(BOOL_V2)).unwrap();
    assert_eq!(&ours[6..8], &[1, 0], "small headers use format 1.0");
    assert_eq!(read(&ours), read(BOOL_V2));
    let f2 = npy::encode_npy(&read(F2_SCALAR)).unwrap();
    assert_eq!(f2, F2_SCALAR);
}

#[test]
fn npy_files_on_disk_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.npy");
    fs::write(&p, UNICODE).unwrap();
    assert_eq!(load_tensor_file(&p).unwrap().strings.len(), 4);
    let err = load_tensor_file(&tmp.path().join("x.npz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(".npz"), "{err}");
    fs::write(&p, b"not numpy").unwrap();
    let err = load_tensor_file(&p).unwrap_err().to_string();
    assert!(err.contains("x.npy: not a valid .npy file"), "{err}");

    let a = HostTensor::from_f32(vec![3], &[1.0, 2.0, 3.0]);
    let b = HostTensor::from_f32(vec![3], &[1.0, 2.0, 3.001]);
    let m = [compare(&a, &a).unwrap(), compare(&a, &b).unwrap()]
        .into_iter()
        .fold(Metrics::default(), Metrics::merge);
    assert_eq!(m.elements, 6);
    assert!(
        !m.bit_identical && m.max_abs_err > 9e-4 && m.max_abs_err < 1.1e-3 && m.cosine > 0.99999
    );
}
