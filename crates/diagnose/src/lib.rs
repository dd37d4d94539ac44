//! goguard-diagnose: explains denials and drafts policy modules. Work in progress.
