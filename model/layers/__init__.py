"""Keras (tf-keras 2) layers of the multi-task backbones."""
from model.layers.cgc import CGC
from model.layers.embedding import FeatureEmbedding
from model.layers.experts import Experts, SoftmaxGate, mix_experts
from model.layers.mixing import TowerMixer
from model.layers.mlp import MLP, Tower
from model.layers.personal_gate import PersonalizedGate

__all__ = ["CGC", "Experts", "FeatureEmbedding", "MLP", "PersonalizedGate", "SoftmaxGate",
           "Tower", "TowerMixer", "mix_experts"]
