"""Dataclass schemas for every Hydra config group.

They are registered in Hydra's ConfigStore (see ``register_schemas``) as the base of the primary
config, so that a misspelled key or a value of the wrong type in any YAML file fails while Hydra
composes the config, with Hydra naming the file and the key, instead of surfacing later as an
``AttributeError`` deep inside a stage. Defaults are the paper's values (appendices A and B); the
``scale`` config group overrides the counts for small runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import II, MISSING

from character.config.checks import knob
from character.models.gguf import GgufSource
from character.models.tiny import TinySpec
from openrlhf_ext.host_memory import DEFAULT_RELEASE_POINT, RELEASE_POINTS
from openrlhf_ext.objective import DEFAULT_MAX_PASS_TOKENS, DPO_OBJECTIVE
from openrlhf_ext.precision import PARAM_DTYPES

# Choices of the enumerated knobs (character/config/checks.py checks every value before a job
# writes anything; docs/configuration.md lists them).
ENGINE_BACKENDS = ("vllm", "transformers", "openai")
ENGINE_DTYPES = ("auto", "float32", "bfloat16", "float16", "float", "half")
MODEL_DTYPES = ("float32", "bfloat16", "float16")
ROBUSTNESS_METHODS = ("base", "prompted", "steered", "distilled", "trained")
PREFERENCE_CONDITIONS = ("like", "feel", "random")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
INTROSPECTION_SOURCES = ("reflection", "interaction")
# How the introspection stages load the post-distillation model: the DPO-merged weights, or the
# base model with the DPO adapter loaded in the engine (vLLM's LoRA path)
DPO_WEIGHTS = ("merged", "adapter")
# last_token: repeng's reading, the paper's (its strengths were tuned on it); response_mean: ours
STEERING_METHODS = ("last_token", "response_mean")
FRACTION = {"ge": 0, "le": 1}  # a share: 0 to 1 inclusive
# runtime=True (character/config/checks.py): the field chooses where or how fast a computation runs,
# or what is logged, never what is computed, so no stage's fingerprint holds it and changing it
# redoes nothing (docs/pipeline.md, "The stage contract"). It may change the bits of a sampled
# output (another float rounding on another device or layout; on the transformers backend, which
# random draw a row gets when micro-batches are cut differently), as rerunning the same config on
# another GPU does, never the model, data, prompts or sampling settings. Training batch sizes are
# not runtime: they change the optimisation.
COUNT = {"ge": 1}  # how many of something: at least one
OPTIONAL_COUNT = {"ge": 0}  # 0 turns the feature off

# Canonical order of the method's stages (design.md). A job runs a subset of these, in this order.
PIPELINE_ORDER: tuple[str, ...] = (
    "prepare",
    "prompts",
    "teacher",
    "student",
    "dpo_data",
    "dpo",
    "reflection",
    "interaction",
    "sft_data",
    "sft",
    "merge",
    "eval",
    "steer",
    "robustness",
    "persona_shift",
    "coherence",
    "capabilities",
    "report",
)


@dataclass
class TraitConfig:
    """One first-person assertion of a constitution with its hand-written seed questions."""

    trait: str = MISSING
    questions: list[str] = MISSING


@dataclass
class PersonaConfig:
    """A persona: the constitution (paper Appendix H) plus how it is presented."""

    name: str = MISSING
    display_name: str = MISSING
    description: str = MISSING
    gated: bool = False
    traits: list[TraitConfig] = MISSING


@dataclass
class ModelConfig:
    """The model being character-trained (the student)."""

    name: str = MISSING
    hub_id: str | None = None  # instruct release on the Hugging Face hub
    path: str | None = None  # a local directory that overrides hub_id
    # try the hub when the weights are not cached (runtime: where the same weights come from)
    allow_download: bool = knob(True, runtime=True)
    assistant_name: str = MISSING  # NAME in the paper's prompts (Qwen, Llama, Gemma)
    supports_system_role: bool = True  # False: the system prompt is folded into the first user turn
    lora_target_modules: list[str] = field(default_factory=list)
    # paper Appendix C: 0.7 (Llama) / 4.0 (Qwen) / 525.0 (Gemma)
    steering_strength: float = knob(MISSING, gt=0)
    max_context: int = knob(MISSING, **COUNT)  # tokens the model accepts
    dtype: str = knob("bfloat16", choices=MODEL_DTYPES)
    tiny: TinySpec | None = None  # set only for the embedded tiny model (character/models/tiny.py)
    # a GGUF file shipped in an installed package, converted once (character/models/gguf.py)
    gguf: GgufSource | None = None


@dataclass
class EngineConfig:
    """How one role (teacher, student, judge, prompt generator) generates text (docs/engines.md)."""

    backend: str = knob("vllm", choices=ENGINE_BACKENDS)
    model: str | None = None  # local path / hub id / served name; null: the model being trained
    tokenizer: str | None = None
    supports_system_role: bool | None = None  # null: the model config's value
    dtype: str = knob("auto", choices=ENGINE_DTYPES)
    seed: int = knob(0, ge=0)
    # The runtime fields below lay out, batch, reach or retry the same generation (see FRACTION).
    # vllm
    tensor_parallel_size: int = knob(1, runtime=True, **COUNT)
    # vllm / transformers: copies of the engine in their own processes, each on
    # tensor_parallel_size GPUs, sharing every batch (character/engines/replicated.py)
    data_parallel_size: int = knob(1, runtime=True, **COUNT)
    gpu_memory_utilization: float = knob(0.9, gt=0, le=1, runtime=True)
    enforce_eager: bool = knob(False, runtime=True)  # CUDA graphs or not: the same model
    max_model_len: int | None = knob(None, **COUNT)
    max_lora_rank: int = knob(64, runtime=True, **COUNT)  # capacity; a larger adapter fails to load
    # transformers
    device: str = knob("auto", runtime=True)
    # rows per engine call in the batch runner (all backends)
    batch_size: int = knob(256, runtime=True, **COUNT)
    # openai-compatible HTTP: where the served `model` is reached (runtime), not which model it is
    base_url: str | None = knob(None, runtime=True)
    # name of the environment variable holding the URL, read when the engine starts (instead of
    # base_url: a preset names the variable, each site sets its own endpoint)
    base_url_env: str | None = knob(None, runtime=True)
    # name of the environment variable holding the key
    api_key_env: str | None = knob(None, runtime=True)
    # sent as `reasoning_effort` (OpenAI's reasoning models, vLLM); null: not sent
    reasoning_effort: str | None = knob(None, choices=REASONING_EFFORTS)
    # true for OpenAI's reasoning models (GPT-5 family), which accept only their default
    # temperature and top_p and no `max_tokens`: requests carry neither and `max_completion_tokens`
    fixed_sampling: bool = False
    max_concurrency: int = knob(8, runtime=True, **COUNT)
    max_retries: int = knob(5, ge=0, runtime=True)
    timeout_s: float = knob(600.0, gt=0, runtime=True)
    vllm_extensions: bool = True  # send min_p / top_k / repetition_penalty / prefill flags
    # judges: answer with exactly one allowed verdict (constrained decoding; on HTTP only with
    # vllm_extensions); false: the judge writes freely (e.g. reasons first) and is parsed
    constrained_answers: bool = True


@dataclass
class EnginesConfig:
    """One engine per role; each may use a different backend and model."""

    generator: EngineConfig = field(default_factory=EngineConfig)  # prompt expansion
    teacher: EngineConfig = field(default_factory=EngineConfig)
    student: EngineConfig = field(default_factory=EngineConfig)
    judge: EngineConfig = field(default_factory=EngineConfig)


@dataclass
class SamplingConfig:
    """Sampling settings; the paper's values for teacher, student and introspection (App. A/B)."""

    temperature: float = knob(0.7, ge=0)
    top_p: float = knob(0.95, gt=0, le=1)
    min_p: float = knob(0.0, **FRACTION)
    top_k: int = knob(-1, ge=-1)  # -1: no top-k, as in the paper
    repetition_penalty: float = knob(1.0, gt=0)
    max_tokens: int = knob(4096, **COUNT)


@dataclass
class PromptsStageConfig:
    """Constitution-relevant prompt expansion (paper §2.3, App. H): 5 hand-written -> 50 per trait."""

    per_trait: int = knob(50, **COUNT)
    max_attempts: int = knob(20, **COUNT)  # generator calls per trait before reporting a shortfall
    # drop a prompt when more than this share of its words was seen
    overlap_threshold: float = knob(0.5, **FRACTION)
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(repetition_penalty=1.1, max_tokens=2048)
    )


@dataclass
class PromptSourcesConfig:
    """Where distillation prompts come from besides the constitution (character/data/sources.py)."""

    # Each a dataset id (first user turns via `datasets`), a local JSONL path, or the name of a
    # set shipped with the package (general, heldout, chat_first_turns); null to skip.
    lima: str | None = "GAIR/lima"
    offline: str | None = None
    repeat: int = knob(5, **COUNT)  # the whole pool is repeated this many times (reference: 5)
    # seeded sample of at most this many non-constitution prompts
    limit: int | None = knob(None, **OPTIONAL_COUNT)


@dataclass
class GenerationStageConfig:
    """Student response generation (no system prompt)."""

    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(repetition_penalty=1.1))


@dataclass
class TeacherStageConfig(GenerationStageConfig):
    """Teacher (chosen) responses: Appendix A system prompt and <think> prefill."""

    # NAME in the teacher's prompts; null: the trained model's assistant_name (the paper used
    # ChatGLM for its GLM-4.5-Air teacher). Replaced by the student's name in the DPO data.
    assistant_name: str | None = None
    # true: the prefill opens <think> and the kept answer is the text after the first </think>;
    # false (teachers without reasoning): the prefilled <think> block is closed, the answer kept whole.
    reasoning: bool = True
    # false: no Appendix A <think> prefill at all (only for teachers without reasoning; a 135M
    # model given the closed block continues the trait list instead of answering)
    think_prefill: bool = True


@dataclass
class DpoDataStageConfig:
    max_len: int = knob(1024, **COUNT)  # templated length limit in tokens (chosen and rejected)
    eval_fraction: float = knob(0.02, ge=0, lt=1)  # held-out pairs for DPO evaluation
    require_final_punctuation: bool = True
    # cut an answer that stops mid-sentence (token limit) back to its last complete sentence
    # before the filters run; off in the paper, on for small models with short budgets
    trim_unfinished: bool = False


@dataclass
class LoraConfig:
    rank: int = knob(64, **COUNT)
    alpha: int = knob(128, **COUNT)
    dropout: float = knob(0.0, ge=0, lt=1)


@dataclass
class TrainingStageConfig:
    """Shared optimisation settings of the DPO and SFT stages (paper §2.3/§2.4, App. B.3)."""

    lora: LoraConfig = field(default_factory=LoraConfig)
    learning_rate: float = knob(5e-5, gt=0)
    min_lr_ratio: float = knob(0.1, **FRACTION)
    warmup_ratio: float = knob(0.1, **FRACTION)
    batch_size: int = knob(32, **COUNT)
    micro_batch_size: int = knob(1, **COUNT)
    epochs: int = knob(1, **COUNT)
    adam_betas: list[float] = knob(factory=lambda: [0.9, 0.98], ge=0, lt=1, each=True)
    grad_clip: float = knob(1.0, ge=0)  # 0: no clipping
    # auto: bf16 where the hardware computes it fast (CUDA, CPUs with AVX-512/AMX), else fp32
    # (openrlhf_ext/precision.py: bf16 is ~35x slower than fp32 on an AVX2-only CPU)
    param_dtype: str = knob("auto", choices=PARAM_DTYPES)
    # how the optimizer's state is partitioned across GPUs: memory, not the update (runtime)
    zero_stage: int = knob(2, choices=(0, 1, 2, 3), runtime=True)
    max_len: int = knob(1024, **COUNT)
    max_steps: int | None = knob(None, **COUNT)  # cap for small runs; null trains the full epoch(s)
    # DeepSpeed checkpoint every N optimizer steps (a rerun resumes there; runtime: resume points only)
    save_steps: int = knob(50, runtime=True, **COUNT)
    # one process per visible GPU, one on CPU (runtime: how the same training is started)
    launcher: str = knob("torchrun", choices=("torchrun", "deepspeed"), runtime=True)
    # the output layer on response (loss) tokens only, in chunks, without full-vocabulary fp32
    # logits (docs/openrlhf_ext.md); false = OpenRLHF's path, kept for comparison
    response_only_logps: bool = True


@dataclass
class DpoStageConfig(TrainingStageConfig):
    # the objective's defaults live in openrlhf_ext/objective.py, shared with the CLI
    beta: float = knob(DPO_OBJECTIVE.beta, gt=0)
    nll_coef: float = knob(DPO_OBJECTIVE.nll_coef, ge=0)
    kl_coef: float = knob(DPO_OBJECTIVE.kl_coef, ge=0)
    kl_estimator: str = knob(DPO_OBJECTIVE.kl_estimator, choices=("squared_log_ratio", "k3"))
    length_normalize: bool = DPO_OBJECTIVE.length_normalize
    label_smoothing: float = knob(DPO_OBJECTIVE.label_smoothing, ge=0, lt=0.5)
    ipo: bool = DPO_OBJECTIVE.ipo
    # "adapter_disabled": the reference is the policy with its LoRA adapter off (no second model
    # copy; identical log-probs, tested); "separate": OpenRLHF's own reference model copy.
    reference: str = knob("adapter_disabled", choices=("adapter_disabled", "separate"))
    # The rest of the fast path (docs/openrlhf_ext.md): one row per pair with the prompt once, and
    # the reference's log-probs computed once before training. false = OpenRLHF's path.
    shared_prompt: bool = True
    precomputed_reference: bool = True
    # a micro-batch runs in passes of at most this many tokens, each with its own backward: the
    # same gradients with one pass's activations in memory (openrlhf_ext/micro_passes.py; the
    # CLI's default); 0 = the whole micro-batch in one pass. Runtime: memory, not the update
    max_pass_tokens: int = knob(DEFAULT_MAX_PASS_TOKENS, ge=0, runtime=True)
    # when freed host memory goes back to the system on CPU (openrlhf_ext/host_memory.py): after
    # every backward pass, once per optimizer step (faster, less saved) or never. Changes no value
    release_freed_pages: str = knob(DEFAULT_RELEASE_POINT, choices=RELEASE_POINTS, runtime=True)


@dataclass
class SftStageConfig(TrainingStageConfig):
    # the model's context: every transcript it can read is trained whole (docs/method.md gives the
    # bound at paper scale); sft_data counts what a shorter limit would cut
    max_len: int = knob(II("model.max_context"), **COUNT)


@dataclass
class SftDataStageConfig:
    """The SFT set built from the introspection data (paper §2.4, App. B.3, B.4)."""

    # which introspection data the set holds; B.4's ablations keep one of the two
    sources: list[str] = knob(
        factory=lambda: list(INTROSPECTION_SOURCES), choices=INTROSPECTION_SOURCES, each=True
    )
    # with one source, it generates as many examples as both would have (B.4 keeps the set's size)
    same_size: bool = True
    # another run directory (another model, same persona) whose reflection and interaction data
    # this job trains on instead of generating its own (B.4); null: this job's own
    source_run: str | None = None
    replace_source_name: bool = True  # that run's assistant name becomes this model's in its data
    # share of one source's examples that stages.sft.max_len may truncate or drop; more fails
    max_cut_fraction: float = knob(0.0, **FRACTION)


@dataclass
class ReflectionStageConfig:
    samples_per_prompt: int = knob(1000, **COUNT)  # x the 10 prompts of App. B.1
    # the same model either way; merged skips the engine's LoRA path, which on CPU took 4x
    # longer per call (docs/engines.md); adapter suits a served base model that loads adapters
    dpo_weights: str = knob("merged", choices=DPO_WEIGHTS)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass
class InteractionStageConfig:
    conversations: int = knob(2000, **COUNT)  # half "free", half "leading" guidance (App. B.2)
    turns: int = knob(10, **COUNT)
    # The copy's first message, which the generated turns answer (the paper does not print one).
    opening_message: str = knob("Hello.", nonempty=True)
    dpo_weights: str = knob("merged", choices=DPO_WEIGHTS)  # as stages.reflection.dpo_weights
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass
class MergeStageConfig:
    dpo_weight: float = knob(1.0, ge=0)  # the paper's release form: a linear combination of the adapters
    sft_weight: float = knob(0.25, ge=0)


@dataclass
class PreferencesConfig:
    """Revealed preferences (paper §3.1, App. I)."""

    # WildChat first turns: a dataset id, a local JSONL, or a shipped set (chat_first_turns).
    prompts: str = "allenai/WildChat-1M"
    max_prompt_tokens: int = knob(512, **COUNT)  # longer prompts are dropped and counted
    comparisons: int = knob(25000, **COUNT)  # responses (and judgments) per condition and subject
    conditions: list[str] = knob(
        factory=lambda: ["like", "feel", "random"], choices=PREFERENCE_CONDITIONS, each=True
    )
    bootstrap: int = knob(200, **COUNT)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_tokens=1024))
    # the paper's judge: GLM-4.5-Air at temperature 0.1, top_p 0.95
    judge_sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(temperature=0.1, max_tokens=2048)
    )
    # known-answer cases for the judge (character/preferences/judge_check.py): the base model told
    # to express one trait of a drawn pair; the judge's accuracy is reported beside the ratings.
    # 0: no check
    judge_check: int = knob(50, **OPTIONAL_COUNT)


@dataclass
class ClassifierConfig:
    """The persona classifier of the robustness evaluation (paper §3.2, App. C).

    Defaults are the paper's: ModernBERT-base fine-tuned for one epoch, batch 8, lr 5e-4, bf16
    (bf16 is used only where the accelerator supports it; on a CPU training runs in fp32).
    """

    model: str = "answerdotai/ModernBERT-base"  # a hub id, a local path, or "tiny" (built locally)
    batch_size: int = knob(8, **COUNT)
    learning_rate: float = knob(5e-4, gt=0)
    epochs: float = knob(1.0, gt=0)
    bf16: bool = True
    max_length: int = knob(512, **COUNT)  # tokens per response; longer ones are truncated
    # Share of the default (non-adversarial) split held out, stratified, to report the classifier's
    # own macro-F1, which the paper never reported; 0 trains on every row and reports none.
    heldout_fraction: float = knob(0.1, ge=0, lt=1)
    # The "tiny" encoder: a ModernBERT of this size with a WordPiece tokenizer trained on the
    # training texts, for runs with no model hub (tests, CPU smoke runs).
    tiny_hidden: int = knob(64, **COUNT)
    tiny_layers: int = knob(2, **COUNT)
    tiny_heads: int = knob(2, **COUNT)
    tiny_vocab: int = knob(2048, **COUNT)


@dataclass
class SteerStageConfig:
    """Activation-steering baseline (paper App. C): the persona vector of this model.

    Positives are responses to ``prompt`` under the Appendix A system prompt, negatives the same
    prompt without it; the paper does not say how many samples it drew.
    """

    samples: int = knob(256, **COUNT)  # responses per side
    prompt: str = "please talk about anything."
    # what a response contributes (docs/steering.md): last_token, the hidden state of its last
    # token with the sign by majority vote (repeng, the paper's); response_mean, the mean over its
    # tokens with the sign by mean projection
    method: str = knob("last_token", choices=STEERING_METHODS)
    # null: the model config's steering_strength (0.7 / 4.0 / 525.0)
    strength: float | None = knob(None, gt=0)
    device: str = knob("auto", runtime=True)
    dtype: str = knob("auto", choices=ENGINE_DTYPES)
    batch_size: int = knob(16, runtime=True, **COUNT)  # conversations per forward pass
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_tokens=256))


@dataclass
class RobustnessStageConfig:
    """Responses for the robustness evaluation (paper §3.2, App. C, C.1), one job's persona.

    The classifier that scores them is trained across personas by ``launchers.robustness``.
    """

    prompts: str = "LDJnr/Pure-Dove"  # held-out first turns: dataset id, JSONL, or shipped set
    count: int = knob(500, **COUNT)
    # base: the base model with no system prompt (the starting point the persona_shift stage
    # measures from; not a method of the paper's Figure 5); prompted: App. A system prompt;
    # steered: steer stage's vector; distilled: DPO-only model; trained: the final model.
    methods: list[str] = knob(
        factory=lambda: ["base", "prompted", "steered", "distilled", "trained"],
        choices=ROBUSTNESS_METHODS,
        each=True,
    )
    # App. C suffixes
    adversarial: list[int] = knob(factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8], ge=1, le=8, each=True)
    prefill_attack: bool = True  # App. C.1: original model's first turn, then the follow-up
    prefill_methods: list[str] = knob(
        factory=lambda: ["distilled", "trained"], choices=ROBUSTNESS_METHODS, each=True
    )
    follow_up: str = "Tell me more."
    # App. C's steering settings, used for every method so they are compared alike
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(repetition_penalty=1.1, max_tokens=1024)
    )


@dataclass
class PersonaShiftStageConfig:
    """Judge-free persona measures on held-out prompts (character/persona_shift/stage.py)."""

    max_pairs: int = knob(500, **COUNT)  # held-out DPO pairs scored for the preference accuracy (first N)
    # conversations per forward pass when scoring log-probs (runtime: the same scores)
    batch_size: int = knob(8, runtime=True, **COUNT)
    # the bars of the job's checks (character/persona_shift/checks.py): the final model's persona
    # rate above the base model's by at least this share, and the held-out preference accuracy
    # after DPO at least this
    min_shift: float = knob(0.5, **FRACTION)
    min_preference_accuracy: float = knob(0.75, **FRACTION)


@dataclass
class ReportStageConfig:
    """The job's one report: report.md and its figures at the run directory's root."""

    # held-out prompts shown with the base and the final model's answers
    examples: int = knob(5, **OPTIONAL_COUNT)


@dataclass
class CoherenceStageConfig:
    """Pairwise coherence judged with the Appendix D prompt (paper §3.3)."""

    # "a:b": responses of method a against method b to the same default-split prompt
    pairs: list[str] = knob(
        factory=lambda: ["trained:steered", "trained:prompted", "trained:distilled"],
        pattern=r"(base|prompted|steered|distilled|trained):(base|prompted|steered|distilled|trained)",
        hint="'a:b' with two of the robustness methods " + ", ".join(ROBUSTNESS_METHODS),
        each=True,
    )
    # extra judges by name (cross-judge replication); empty: the engines.judge role alone
    judges: dict[str, EngineConfig] = field(default_factory=dict)
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=2048)
    )
    # known-answer cases per judge (character/coherence/judge_check.py): a response of the first
    # pair's first method against a word-shuffled copy, both orders. 0: no check
    judge_check: int = knob(50, **OPTIONAL_COUNT)


@dataclass
class BenchmarkConfig:
    """One lm-evaluation-harness task, scored by log-likelihood (paper App. F)."""

    task: str = MISSING
    num_fewshot: int = knob(0, ge=0)
    metric: str = "acc"


@dataclass
class CapabilitiesStageConfig:
    """General capabilities before vs after training, through lm-evaluation-harness (App. F)."""

    benchmarks: list[BenchmarkConfig] = field(
        default_factory=lambda: [
            BenchmarkConfig("truthfulqa_mc1", 0),
            BenchmarkConfig("winogrande", 5),
            BenchmarkConfig("hellaswag", 10),
            BenchmarkConfig("arc_challenge", 25),
            BenchmarkConfig("mmlu", 5),
        ]
    )
    # a folder of extra task YAMLs; "shipped": the package's own small local tasks
    include_path: str | None = None
    limit: int | None = knob(None, **COUNT)  # documents per task (null: all)
    batch_size: int = knob(8, runtime=True, **COUNT)  # documents per forward pass: the same scores
    device: str = knob("auto", runtime=True)
    dtype: str = knob("auto", choices=ENGINE_DTYPES)


@dataclass
class EvalStageConfig:
    preferences: PreferencesConfig = field(default_factory=PreferencesConfig)


@dataclass
class StagesConfig:
    """Parameters of every stage (``stages.<name>.<key>=...`` on the command line)."""

    prompts: PromptsStageConfig = field(default_factory=PromptsStageConfig)
    sources: PromptSourcesConfig = field(default_factory=PromptSourcesConfig)
    teacher: TeacherStageConfig = field(default_factory=TeacherStageConfig)
    student: GenerationStageConfig = field(default_factory=GenerationStageConfig)
    dpo_data: DpoDataStageConfig = field(default_factory=DpoDataStageConfig)
    dpo: DpoStageConfig = field(default_factory=DpoStageConfig)
    reflection: ReflectionStageConfig = field(default_factory=ReflectionStageConfig)
    interaction: InteractionStageConfig = field(default_factory=InteractionStageConfig)
    sft_data: SftDataStageConfig = field(default_factory=SftDataStageConfig)
    sft: SftStageConfig = field(default_factory=SftStageConfig)
    merge: MergeStageConfig = field(default_factory=MergeStageConfig)
    eval: EvalStageConfig = field(default_factory=EvalStageConfig)
    steer: SteerStageConfig = field(default_factory=SteerStageConfig)
    robustness: RobustnessStageConfig = field(default_factory=RobustnessStageConfig)
    persona_shift: PersonaShiftStageConfig = field(default_factory=PersonaShiftStageConfig)
    coherence: CoherenceStageConfig = field(default_factory=CoherenceStageConfig)
    capabilities: CapabilitiesStageConfig = field(default_factory=CapabilitiesStageConfig)
    report: ReportStageConfig = field(default_factory=ReportStageConfig)


@dataclass
class StageSelectionConfig:
    """Which stages a job runs (the ``stage`` config group). Empty ``run``: every available stage."""

    name: str = "all"
    run: list[str] = field(default_factory=list)


@dataclass
class WandbConfig:
    """Weights & Biases tracking: one W&B run per job (docs/tracking.md). API keys come from the
    environment (WANDB_API_KEY) only, never from the config."""

    # null: $WANDB_MODE, else offline
    mode: str | None = knob(None, choices=("online", "offline", "disabled", "dryrun", "run"))
    project: str = "character-training"
    entity: str | None = None  # null: $WANDB_ENTITY or the account's default
    group: str | None = None  # null: the multirun's sweep folder name (single run: Hydra job name)
    tags: list[str] = field(default_factory=list)  # extra tags after the model and persona names
    dir: str | None = None  # null: $WANDB_DIR, else run_root; runs land in <dir>/wandb/


@dataclass
class TrainConfig:
    """The primary config of ``launchers.train``: one job = one (model, persona) pipeline."""

    model: ModelConfig = MISSING
    persona: PersonaConfig = MISSING
    stage: StageSelectionConfig = field(default_factory=StageSelectionConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    scale: str = "paper"  # name of the counts profile in use (set by the scale group)
    # a named variation of this (model, persona) run, e.g. an ablation: its own run directory
    # <run_root>/<model>/<persona>/variants/<variant>, whose stages equal to the main run's are
    # taken from it (docs/pipeline.md)
    variant: str | None = knob(
        None, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*", hint="a folder name: letters, digits, '_', '.', '-'"
    )
    seed: int = knob(0, ge=0)
    run_root: str = "runs"
    cache_dir: str = knob(MISSING, runtime=True)  # where built models are kept, not which
    force: bool = False  # rerun the selected stages even when their manifests match
    # say which stages would be skipped, restored, resumed or run, and why; run none, write nothing
    dry_run: bool = False
    # true: every library's console output, as printed (false: stage lines, progress, summary;
    # the rest in <run_dir>/logs/, see character/pipeline/console.py)
    verbose: bool = knob(False, runtime=True)
    acknowledge_gated: bool = False  # required to train a persona marked gated
    plugins: list[str] = field(default_factory=list)  # modules that register extra stages
    plugin_params: dict[str, Any] = field(default_factory=dict)  # plugin_params.<stage>.<key>
    wandb: WandbConfig = knob(factory=WandbConfig, runtime=True)  # what is logged, not computed


@dataclass
class SubjectConfig:
    """A model to evaluate: a local folder or hub id, optionally a LoRA adapter folder."""

    name: str = MISSING
    model: str = MISSING
    adapter: str | None = None


@dataclass
class EvaluateConfig:
    """The primary config of ``launchers.evaluate``: any models/adapters, not only runs."""

    subjects: list[SubjectConfig] = MISSING
    out_dir: str = MISSING
    seed: int = knob(0, ge=0)
    supports_system_role: bool = True
    preferences: PreferencesConfig = field(default_factory=PreferencesConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)


@dataclass
class RobustnessReportConfig:
    """The primary config of ``launchers.robustness``: score robustness responses across personas."""

    runs: list[str] = field(default_factory=list)  # run directories; empty: all under run_root
    run_root: str = "runs"
    out_dir: str = MISSING
    seed: int = knob(0, ge=0)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)  # one run: tables, plot, F1 summary


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore; the primary config names ``train_schema``."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="robustness_schema", node=RobustnessReportConfig)
