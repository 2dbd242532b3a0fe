"""Base experiment: restore MP3 at 32-192 kbps (CBR and VBR) at 44.1 kHz, and leave
320 kbps MP3s (little to repair) alone.

Run:
    python launch/train.py --config configs/base.py --workdir workdir/base
Override any field from the command line, e.g. ``--config.train.steps=1000``.
With ``data.path`` empty it trains on the embedded default corpus (no download).
"""

import ml_collections

from mp3gan import models
from mp3gan.data import loader as data_loader


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # parameter init and data stream

    # Data (corpus, crops, degradations, splits, loader): every field with its default and
    # a one-line meaning lives in mp3gan/data/loader.py DATA_DEFAULTS, the one home the
    # loader and the pair settings read too; override any as --config.data.FIELD=VALUE.
    c.data = data_loader.default_data_config()

    c.model = ml_collections.ConfigDict()
    # Generator: ``kind`` ("frame": ConvNeXt on the compressed complex STFT at hop 128,
    # with a gain stage at hop 32, ~0.53 GMAC per channel-second; "unet": the 1-D U-Net)
    # and that class's kwargs (mp3gan/models/frame_generator.py, mp3gan/models/unet.py).
    c.model.generator = ml_collections.ConfigDict(models.BASE_GENERATOR)
    # Discriminator kwargs (mp3gan/models/discriminators.py): multi-period + multi-res STFT,
    # widths capped so they cost about 1 GMAC per audio-second per pass.
    c.model.discriminator = ml_collections.ConfigDict(models.BASE_DISCRIMINATORS)

    c.loss = ml_collections.ConfigDict()
    c.loss.mel = 45.0  # L1 log-mel weight (HiFi-GAN's 45)
    # Multi-resolution STFT (spectral convergence + log magnitude per linear-frequency bin)
    # weight. At 1 its gradient was 1/70 of mel's, and the restored band grew as lines at
    # every other mel-filter crossing (log-mel prefers a noise band, the compressed complex
    # term prefers the lines almost as much); the per-bin log magnitude prices the empty
    # bins between them. At 50 it filled the band and cost pre-echo and SI-SDR.
    c.loss.mr_stft = 15.0
    # Resolutions of the MR-STFT loss. Once the term had weight, 0.3-0.4 dB less pre-echo
    # was removed on validation music; leaving out 128 and 256 (2.9, 5.8 ms) won back
    # about 0.1 dB of it at 64 kbps (little at 32), so they stay out.
    c.loss.stft_fft_sizes = (512, 1024, 2048)
    # Phase-aware: error of the power-compressed complex STFT relative to the reference's
    # energy (~0.06 for MP3 at 64 kbps). It prefers no band to a band at the wrong phase,
    # which keeps SI-SDR (and good MP3s) intact against the magnitude terms. 0 disables.
    c.loss.complex = 100.0
    # Where the complex term counts: "all" bins (as the shipped model trained), the
    # time-frequency bins where the MP3 "kept" the band, or the frequencies "below_cutoff"
    # (the encoder's low-pass). Where the input holds nothing the phase cannot be known,
    # and there the compressed term held the shipped model's band ~10 dB too dark.
    c.loss.complex_band = "all"
    # With a complex_band other than "all": free the band only in clips whose MP3 holds
    # most of the reference's power in the kHz above this frequency (Hz; 0 = every clip).
    # Filled above a 32 kbps MP3's 5.5 kHz low-pass, a band at unknowable phase cost
    # SI-SDR (run 10); 8500 typically keeps stereo 32 and 48 kbps clips phase-bound and
    # frees 64 kbps and up (losses.wide_input).
    c.loss.complex_band_min_cutoff_hz = 0.0
    # And keep bound the clips whose MP3 holds the kHz above this (Hz; 0 = no bound):
    # near-transparent MP3s, whose high SI-SDR a band at unknowable phase costs most;
    # 12000 keeps 96 kbps and up (15-16.5 kHz low-passes) as the shipped model trained.
    # A clip whose reference is silent in that kHz stays bound, so a maximum near Nyquist
    # binds nearly every clip (as "all"), not none.
    c.loss.complex_band_max_cutoff_hz = 0.0
    # The 2-8 kHz energy of the 10 ms before each onset against the reference's, as |log10|
    # of their ratio (0.1 = 1 dB): pre-echo is where whole-clip losses hardly look. 300
    # (was 150, under which it moved slowly) so MR-STFT's new weight does not take its share.
    c.loss.pre_echo = 300.0
    # The same lead-ins per 2.9 ms frame and bin (|log10| of the power ratio): where in
    # the window and band MP3 put its noise, which the fine gain stage can cut there
    # (losses.lead_in_spectrum_loss). 0 disables (as the shipped model trained).
    c.loss.lead_in_spectrum = 0.0
    # Do no harm: waveform error as log10 of its ratio to the MP3's error (0 = as the input,
    # -0.1 = 1 dB better SDR). The spectral terms are level-relative and would trade the
    # loud band's accuracy (SI-SDR) for the quiet one's; this term is steepest on good MP3s.
    # Its gradient grows as 1 / error, so it mostly guards the high bitrates: at 60 (with
    # MR-STFT at 1) it drowned the pre-echo term. With MR-STFT at 50 and this at 10, 128
    # kbps validation SI-SDR fell to -0.24 dB; MR-STFT 15 with this at 20 brought it back
    # to -0.03; 40 did not lift 32 kbps SI-SDR (a filled band costs it;
    # see docs/results/run4_and_earlier.md, run 4).
    c.loss.waveform = 40.0
    c.loss.coherence = 1.0  # (1 - coherence) weight; 0 disables the term
    c.loss.coherence_min_hz = 4000.0  # coherence loss counts bins from here up
    c.loss.adversarial = 1.0  # LSGAN generator loss weight
    c.loss.feature = 2.0  # feature-matching weight (HiFi-GAN's 2)

    c.optim = ml_collections.ConfigDict()
    c.optim.g_lr = 2e-4  # generator peak learning rate
    c.optim.d_lr = 2e-4  # discriminator peak learning rate
    c.optim.b1 = 0.8  # Adam beta1 (HiFi-GAN)
    c.optim.b2 = 0.99  # Adam beta2 (HiFi-GAN)
    c.optim.weight_decay = 0.0  # AdamW decoupled weight decay
    c.optim.clip_norm = 10.0  # global gradient-norm clip
    c.optim.warmup_steps = 1000  # linear learning-rate warm-up

    c.train = ml_collections.ConfigDict()
    c.train.steps = 200_000  # total generator updates
    c.train.batch_size = 16  # global batch (all devices of all processes)
    c.train.recon_warmup_steps = 5000  # reconstruction-only steps before the GAN starts
    # A model folder (e.g. checkpoints/mp3gan-base) whose generator a *new* run starts
    # from; discriminators and optimisers start fresh. "" = random initialisation.
    c.train.init_from = ""
    # Samples of each crop the discriminators judge (a window that moves every step);
    # half the crop halves their cost, most of a CPU GAN step. 0 = the whole crop.
    c.train.disc_crop = 16384
    c.train.log_every = 50  # steps between scalar logs
    c.train.eval_every = 5000  # steps between held-out evaluations
    c.train.checkpoint_every = 1000  # steps between checkpoints of the latest state
    # Wall-time schedule, beside the step counts above, so a slow machine (a CPU) shows
    # results within minutes while a fast one keeps its step schedule; 0 = off.
    c.train.log_minutes = 1.0  # also log scalars when this long has passed since the last
    c.train.first_eval_minutes = 5.0  # first held-out evaluation (numbers, audio, figures)
    c.train.eval_minutes = 15.0  # then evaluate at least this often
    c.train.checkpoint_minutes = 10.0  # also save when this long has passed since the last
    c.train.keep_checkpoints = 2  # latest checkpoints kept (the best is kept apart)
    c.train.eval_clips = 8  # held-out clips per evaluation
    c.train.eval_clip_seconds = 3.0  # length of each held-out clip
    c.train.eval_degradations = ("mp3:64", "mp3:128")  # degradations scored at eval
    c.train.best_metric = "lsd_high"  # model output metric that picks the best checkpoint
    c.train.best_lower = True  # lower best_metric is better

    c.wandb = ml_collections.ConfigDict()
    c.wandb.mode = "offline"  # offline | online | disabled; offline needs no account
    c.wandb.project = "mp3gan"  # wandb project
    c.wandb.name = ""  # run name and id ("" = the workdir's name)
    c.wandb.media_clips = 2  # clips logged as audio + figure at each eval
    return c
