"""What the browser's range slider sends back, for AppTest (which passes values through unchanged).

Streamlit's slider (react-aria / react-stately) snaps every handle to ``min + k·step`` and rounds it
to the step's precision (``snapValueToStep`` / ``roundToStepPrecision``), so a handle left at a
minimum of 0.052097 comes back as 0.0521. Tests of range filters set the values this returns.
"""

from __future__ import annotations

import math

import numpy as np


def _js_string(step: float) -> str:
    """JavaScript's ``Number.prototype.toString`` for the steps sliders use."""
    if step != 0 and abs(step) < 1e-6:
        mantissa, exponent = f"{step:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e-{int(exponent[1:])}"
    return np.format_float_positional(step, trim="-")


def round_to_step_precision(value: float, step: float) -> float:
    text = _js_string(step)
    e_index = text.lower().find("e-")
    if e_index > 0:
        precision = abs(math.floor(math.log10(abs(step)))) + e_index
    else:
        point = text.find(".")
        precision = len(text) - point if point >= 0 else 0
    if precision > 0:
        power = 10**precision
        value = math.floor(value * power + 0.5) / power  # JS Math.round
    return value


def snap(value: float, minimum: float, maximum: float, step: float) -> float:
    """react-stately's ``snapValueToStep``: the value the slider reports for a handle at ``value``."""
    remainder = math.fmod(value - minimum, step)
    if abs(remainder) * 2 >= step:
        snapped = value + math.copysign(step - abs(remainder), remainder)
    else:
        snapped = value - remainder
    snapped = round_to_step_precision(snapped, step)
    if snapped < minimum:
        snapped = minimum
    elif snapped > maximum:
        snapped = minimum + math.floor(round_to_step_precision((maximum - minimum) / step, step)) * step
    return round_to_step_precision(snapped, step)


def browser_range(slider, low: float, high: float) -> tuple[float, float]:
    """The pair a range slider element of AppTest would receive from a browser for handles at low, high."""
    minimum, maximum, step = float(slider.min), float(slider.max), float(slider.step)
    return snap(low, minimum, maximum, step), snap(high, minimum, maximum, step)
