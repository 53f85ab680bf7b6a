"""The sharded, resumable pipeline that captions and tags large video collections."""
