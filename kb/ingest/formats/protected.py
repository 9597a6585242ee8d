"""Password-protected Office files, named as such: an encrypted .docx/.xlsx/.pptx is no zip at all but an
OLE compound file holding `EncryptionInfo` and `EncryptedPackage` streams, and a legacy .doc/.xls/.ppt
flags encryption inside its streams; without this check each reads as "truncated or corrupt".

msoffcrypto-tool reads both kinds (the OOXML streams, Word's FIB flag, Excel's FILEPASS record,
PowerPoint's CryptSession) and is the maintained library for Office encryption; kb only asks it whether
a file is encrypted, never decrypts.
"""

from __future__ import annotations

from pathlib import Path

from kb.errors import ParseError

ENCRYPTED = "encrypted (password-protected); kb cannot read it"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound-file signature every Office 97-2003 file starts with


def refuse_encrypted(path: Path) -> None:
    """Raise ParseError(ENCRYPTED) when `path` is an encrypted Office file; return otherwise (a file
    that is not one is left to its reader, which says what is wrong with it)."""
    with path.open("rb") as f:
        if f.read(8) != OLE_MAGIC:
            return
        f.seek(0)
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import msoffcrypto

        try:
            encrypted = msoffcrypto.OfficeFile(f).is_encrypted()
        except Exception:  # not an Office file it knows (an Outlook .msg, a damaged file): not ours to judge
            return
    if encrypted:
        raise ParseError(ENCRYPTED)
