"""Model families behind one contract (see :mod:`stochdeblur.methods.base`)."""
