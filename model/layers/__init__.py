"""Keras (tf-keras 2) layers of the multi-task backbones."""
from drgrad.model.layers.cgc import CGC
from drgrad.model.layers.embedding import FeatureEmbedding
from drgrad.model.layers.experts import Experts, SoftmaxGate, mix_experts
from drgrad.model.layers.mixing import TowerMixer
from drgrad.model.layers.mlp import MLP, Tower
from drgrad.model.layers.one_hot_encoder import OneHotEncoder
from drgrad.model.layers.personal_gate import PersonalizedGate

__all__ = ["CGC", "Experts", "FeatureEmbedding", "MLP", "OneHotEncoder", "PersonalizedGate",
           "SoftmaxGate", "Tower", "TowerMixer", "mix_experts"]
