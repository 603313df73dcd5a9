"""The user's Feast repository as featctl sees it, without Feast:
``feature_store.yaml`` (feature_store.py) and the files a release is made of
(bundle.py). Never writes into the repository."""
