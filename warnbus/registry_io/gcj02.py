"""GCJ-02 (the offset coordinates of Chinese web maps) to WGS-84 and back.

The forward transform WGS-84 -> GCJ-02 is the well-known published one (Krasovsky ellipsoid,
the offset polynomials); there is no closed inverse, so GCJ-02 -> WGS-84 iterates the forward
transform until the point maps back to within 1e-9 degrees (a few iterations; ~0.1 mm).
Outside China's box both are the same. Vectorised with numpy; (lon, lat) arrays in degrees.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_A = 6378245.0  # Krasovsky 1940 semi-major axis
_EE = 0.00669342162296594323  # its first eccentricity squared
_PI = np.pi

Array = npt.NDArray[np.float64]


def _in_china(lon: Array, lat: Array) -> npt.NDArray[np.bool_]:
    return (lon > 72.004) & (lon < 137.8347) & (lat > 0.8293) & (lat < 55.8271)


def _dlat(x: Array, y: Array) -> Array:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    r += (20.0 * np.sin(6.0 * x * _PI) + 20.0 * np.sin(2.0 * x * _PI)) * 2.0 / 3.0
    r += (20.0 * np.sin(y * _PI) + 40.0 * np.sin(y / 3.0 * _PI)) * 2.0 / 3.0
    r += (160.0 * np.sin(y / 12.0 * _PI) + 320.0 * np.sin(y * _PI / 30.0)) * 2.0 / 3.0
    return r


def _dlon(x: Array, y: Array) -> Array:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    r += (20.0 * np.sin(6.0 * x * _PI) + 20.0 * np.sin(2.0 * x * _PI)) * 2.0 / 3.0
    r += (20.0 * np.sin(x * _PI) + 40.0 * np.sin(x / 3.0 * _PI)) * 2.0 / 3.0
    r += (150.0 * np.sin(x / 12.0 * _PI) + 300.0 * np.sin(x / 30.0 * _PI)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(lon: Array, lat: Array) -> tuple[Array, Array]:
    """The published forward transform."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlat = _dlat(lon - 105.0, lat - 35.0)
    dlon = _dlon(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * _PI
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * _PI)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * _PI)
    inside = _in_china(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_wgs84(lon: Array, lat: Array, *, tol: float = 1e-9, rounds: int = 30,
                   ) -> tuple[Array, Array]:
    """The inverse, by iteration: w <- w - (forward(w) - g) until forward(w) == g."""
    g_lon = np.asarray(lon, dtype=np.float64)
    g_lat = np.asarray(lat, dtype=np.float64)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(rounds):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = f_lon - g_lon, f_lat - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        if float(np.max(np.abs(e_lon), initial=0.0)) < tol and float(
                np.max(np.abs(e_lat), initial=0.0)) < tol:
            break
    return w_lon, w_lat
