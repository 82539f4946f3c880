//! Linux host side of a ztplane node.
