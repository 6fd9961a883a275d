"""Deep unsupervised cross-modal hashing baselines (DJSRH, JDSH, DGCPN, UCCH, CIRH, DUCH).

Each is built on mmhash's public deep base (:mod:`mmhash.deep`) exactly as a third party's deep
plugin would be, and registered through the ``mmhash.hashers`` entry points. They need PyTorch:
``pip install 'mmhash-baselines[deep]'``; without it ``mmhash list`` shows them as unavailable
with the reason.

All run in the *features-only* setting the field uses with frozen backbones: the image network is
a head on the given image feature vectors (e.g. 4096-d VGG fc7 features) instead of a fine-tuned
CNN, and the text network a head on the given text vectors. Each module's docstring says where
the method's paper and official code differ and which one is followed.
"""
