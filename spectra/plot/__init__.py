"""Matplotlib drawings of the library's results.

Every function takes ``ax=`` (a new figure when None), draws, and returns the
Axes; nothing here calls ``plt.show()`` or computes spectra beyond what the
data object already holds. One module per kind of figure.
"""
