"""Layers, the Module base class, the loss and initialisers."""

from cnnx.nn import functional, init
from cnnx.nn.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from cnnx.nn.batchnorm import BatchNorm1D, BatchNorm2D
from cnnx.nn.conv import Conv2D
from cnnx.nn.dropout import Dropout
from cnnx.nn.linear import Flatten, Linear
from cnnx.nn.loss import SoftmaxCrossEntropy
from cnnx.nn.module import Module, Parameter, Sequential
from cnnx.nn.pooling import AvgPool2D, MaxPool2D

__all__ = [
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv2D",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "MaxPool2D",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "functional",
    "init",
]
