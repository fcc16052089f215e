pub mod cron;
pub mod deploy;
pub mod dev;
pub mod new;
pub mod run;
pub mod validate;
