/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
typedef int c2m_placeholder_codec_json;
